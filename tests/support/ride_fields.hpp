// ride_fields.hpp — the `[[fields]]` of deploy/pipelines/ncr_ride_bookings.toml as TOML text, for
// integration tests that write their own pipeline files.
#pragma once

#include <string>

namespace eddy::test {

/// The example's 11 fields; with `kafka_position` also kafka_partition ($partition) and
/// kafka_offset ($offset). `select` (optional) receives them as a TOML list body: "\"id\", ...".
inline std::string ride_fields_toml(bool kafka_position, std::string* select = nullptr) {
  const struct {
    const char* name;
    const char* column;
    const char* type;
    const char* extra;
  } fields[] = {
      {"id", "id", "int", "required = true\n"},
      {"op", "$op", "string", ""},
      {"created_at_ts", "created_at", "timestamp", "unit = \"micros\"\n"},
      {"updated_at_ts", "updated_at", "timestamp", "unit = \"micros\"\n"},
      {"booking_value", "ncr_ride_bookings.csv/booking+value", "double", ""},
      {"ride_distance", "ncr_ride_bookings.csv/ride+distance", "double", ""},
      {"booking_status", "ncr_ride_bookings.csv/booking+status", "string", ""},
      {"vehicle_type", "ncr_ride_bookings.csv/vehicle+type", "string", ""},
      {"pickup_location", "ncr_ride_bookings.csv/pickup+location", "string", ""},
      {"customer_id", "ncr_ride_bookings.csv/customer+id", "string", ""},
      {"source_ts", "$source_ts", "timestamp", ""},
      {"kafka_partition", "$partition", "int", ""},
      {"kafka_offset", "$offset", "int", ""},
  };
  std::string t;
  for (const auto& f : fields) {
    if (!kafka_position && f.column[0] == '$' && std::string(f.name).starts_with("kafka_"))
      continue;
    t += std::string("\n[[fields]]\nname = \"") + f.name + "\"\ncolumn = \"" + f.column +
         "\"\ntype = \"" + f.type + "\"\n" + f.extra;
    if (select) *select += std::string(select->empty() ? "" : ", ") + "\"" + f.name + "\"";
  }
  return t;
}

}  // namespace eddy::test
