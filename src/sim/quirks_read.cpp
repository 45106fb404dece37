#include "sim/quirks_read.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

ReadQuirks ReadQuirks::from_json(const nlohmann::json& j, const ReadQuirks& base) {
    using quirks_detail::as;
    ReadQuirks q = base;
    quirks_detail::for_each_key(j, "read", [&](const std::string& key, const nlohmann::json& value) {
        if (key == "newest_first") q.newest_first = as<bool>(value, "read", key);
        else if (key == "churn_adds") q.churn_adds = as<int64_t>(value, "read", key);
        else if (key == "churn_removes") q.churn_removes = as<int64_t>(value, "read", key);
        else if (key == "churn_reads") q.churn_reads = as<int64_t>(value, "read", key);
        else if (key == "null_data") q.null_data = as<bool>(value, "read", key);
        else if (key == "total_overcount") q.total_overcount = as<int64_t>(value, "read", key);
        else if (key == "customer_id_records") q.customer_id_records = as<bool>(value, "read", key);
        else return false;
        return true;
    });
    return q;
}

nlohmann::json ReadQuirks::to_json() const {
    return {{"newest_first", newest_first},       {"churn_adds", churn_adds},
            {"churn_removes", churn_removes},     {"churn_reads", churn_reads},
            {"null_data", null_data},             {"total_overcount", total_overcount},
            {"customer_id_records", customer_id_records}};
}

}  // namespace cdpsync::sim
