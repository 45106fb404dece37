// Small text rules every stage shares, one copy each.
#pragma once

#include <string>

namespace cdpsync::text {

// The message on one line (PostgreSQL's span lines: "LINE 1: ... ^"): line breaks become
// spaces, trailing whitespace goes.
std::string one_line(std::string s);

// Without leading and trailing whitespace (space, tab, CR, LF, VT, FF).
std::string trim(const std::string& s);

// A plain SQL identifier as cdp-sync accepts for database.schema: [a-z_][a-z0-9_]{0,62}
// (lower case: PostgreSQL folds unquoted names, so the name means the same quoted or not).
bool is_plain_identifier(const std::string& name);

}  // namespace cdpsync::text
