#include "model/row.hpp"

#include <cmath>
#include <limits>

namespace eddy {

std::string_view to_string(field_type t) {
  switch (t) {
    case field_type::string:
      return "string";
    case field_type::int64:
      return "int";
    case field_type::float64:
      return "double";
    case field_type::boolean:
      return "bool";
    case field_type::timestamp:
      return "timestamp";
  }
  return "?";
}

double canonical_double(double d) {
  if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
  if (d == 0.0) return 0.0;
  return d;
}

}  // namespace eddy
