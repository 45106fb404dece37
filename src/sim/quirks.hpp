// Behaviours the CDP's document allows but does not promise, each a simulator option that is
// off by default (shared/DESIGN.md: anything the document does not forbid can happen).
// Faults (faults.hpp) are random or scripted failures; quirks are how this CDP *is*.
//
// Set them with `cdp-sync-sim --quirk SECTION.KEY=VALUE` (repeatable), with
// `PUT /__sim/quirks` (a JSON object of sections, merged into the current quirks), or in
// process through State::set_quirks. docs/simulator.md lists every key.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sim/quirks_groups.hpp"
#include "sim/quirks_limit.hpp"
#include "sim/quirks_read.hpp"
#include "sim/quirks_write.hpp"

namespace cdpsync::sim {

struct Quirks {
    WriteQuirks write;
    ReadQuirks read;
    GroupQuirks groups;
    LimitQuirks limit;

    // {"write": {...}, "read": {...}, "groups": {...}, "limit": {...}}; sections and keys
    // absent keep their value in `base`. Throws std::invalid_argument naming a bad key.
    static Quirks from_json(const nlohmann::json& j, const Quirks& base = {});
    nlohmann::json to_json() const;
    // One "SECTION.KEY=VALUE" flag; VALUE is read as JSON (true, 3, 0.5, "text") and else
    // as a plain string.
    void set_flag(const std::string& flag);
};

}  // namespace cdpsync::sim
