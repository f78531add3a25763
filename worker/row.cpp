#include "worker/row.hpp"

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

}  // namespace eddy
