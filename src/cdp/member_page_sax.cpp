// read_member_page_fast: a member page reply in one streaming pass over the body.
//
// A full resync reads every membership of the CDP; decoding each page into a DOM (one
// heap node per field of every record) then cost more CPU than everything else together.
// This reader walks the body with nlohmann's SAX parser and keeps only what the sync needs:
// code, msg, data.current/size/total and each record's customer id.
//
// The body is parsed by simdjson (validating, several times nlohmann's speed) and the parsed
// document walked into the same handler; a body simdjson refuses, or that holds a \u escape
// (whose surrogate rules the two parsers may not share), goes through nlohmann's SAX parser
// instead, so the handler decides alike either way.
//
// It never decides an odd reply: anything the DOM path (parse_envelope + parse_page +
// parse_member) would refuse, word differently, or that this reader does not model (a
// repeated key, a float id, a code != 0, a record that is no object...) makes it give up,
// and the caller decodes the same body the DOM way. So both paths agree on every body.
#include <charconv>
#include <climits>
#include <cstring>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "cdp/models.hpp"

namespace cdpsync::cdp {

namespace {

// What a Long field (get_long's rules) held: absent or null, a value, or something else.
struct LongField {
    enum class State { absent, value, unusable } state = State::absent;
    int64_t value = 0;
    bool seen = false;     // the key appeared (repeats are left to the DOM path)
    bool non_null = false; // present with a non-null value (member_id_field's test)

    void set(int64_t v) { state = State::value, value = v, non_null = true; }
    void set_unusable() { state = State::unusable, non_null = true; }
};

std::optional<int64_t> long_of_text(const std::string& s) {
    int64_t out = 0;
    const char* last = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), last, out);
    if (ec == std::errc() && ptr == last && !s.empty()) return out;
    return std::nullopt;
}

// The SAX handler. `where` is the level being read; containers nobody needs are skipped by
// counting `skip`. Returning false from a callback stops the parse: the reply is left to the
// DOM path.
class MemberPageHandler {
public:
    explicit MemberPageHandler(const std::string& id_field) : id_field_(id_field) {}

    bool null() { return scalar_null(); }
    bool boolean(bool) { return scalar_other(); }
    bool number_integer(json::number_integer_t v) { return scalar_long(v); }
    bool number_unsigned(json::number_unsigned_t v) {
        if (v > static_cast<uint64_t>(INT64_MAX)) return scalar_other();
        return scalar_long(static_cast<int64_t>(v));
    }
    bool number_float(json::number_float_t, const json::string_t&) { return scalar_other(); }
    bool binary(json::binary_t&) { return false; }
    bool string(json::string_t& s);
    bool start_object(std::size_t);
    bool end_object();
    bool start_array(std::size_t);
    bool end_array();
    bool key(json::string_t& k);
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

    // The reply, when it is a clean success this reader fully understood.
    std::optional<MemberPageReply> finish();

private:
    enum class Where { top, envelope, data, records, record, done };
    enum class Slot { none, code, msg, data, current, size, total, records, customer_id, id, named_id };

    bool enter(Where next) { return ++depth_ <= 256 && (where_ = next, slot_ = Slot::none, true); }
    bool skip_container() { return ++depth_ <= 256 && (++skip_, true); }
    bool scalar_null();
    bool scalar_long(int64_t v);
    bool scalar_other();
    bool record_done();
    LongField* long_slot();

    const std::string& id_field_;
    Where where_ = Where::top;
    Slot slot_ = Slot::none;
    int depth_ = 0;
    int skip_ = 0;
    bool code_seen_ = false, msg_seen_ = false, data_seen_ = false, records_seen_ = false;
    int64_t code_ = -1;
    std::string msg_;
    LongField current_, size_, total_;
    LongField customer_id_, id_, named_id_;  // of the record being read
    MemberPageReply reply_;
};

// A repeated key: the DOM keeps the last value; this reader leaves that to it.
bool first_time(bool& seen) { return !std::exchange(seen, true); }

bool MemberPageHandler::key(json::string_t& k) {
    if (skip_ > 0) return true;
    slot_ = Slot::none;
    switch (where_) {
    case Where::envelope:
        if (k == "code") return slot_ = Slot::code, first_time(code_seen_);
        if (k == "msg") return slot_ = Slot::msg, first_time(msg_seen_);
        if (k == "data") return slot_ = Slot::data, first_time(data_seen_);
        return true;
    case Where::data:
        if (k == "current") return slot_ = Slot::current, first_time(current_.seen);
        if (k == "size") return slot_ = Slot::size, first_time(size_.seen);
        if (k == "total") return slot_ = Slot::total, first_time(total_.seen);
        if (k == "records") return slot_ = Slot::records, first_time(records_seen_);
        return true;
    case Where::record:
        if (!id_field_.empty()) {
            if (k == id_field_) return slot_ = Slot::named_id, first_time(named_id_.seen);
            return true;
        }
        if (k == "customerId") return slot_ = Slot::customer_id, first_time(customer_id_.seen);
        if (k == "id") return slot_ = Slot::id, first_time(id_.seen);
        return true;
    default: return false;
    }
}

LongField* MemberPageHandler::long_slot() {
    switch (slot_) {
    case Slot::current: return &current_;
    case Slot::size: return &size_;
    case Slot::total: return &total_;
    case Slot::customer_id: return &customer_id_;
    case Slot::id: return &id_;
    case Slot::named_id: return &named_id_;
    default: return nullptr;
    }
}

bool MemberPageHandler::scalar_null() {
    if (skip_ > 0) return true;
    if (where_ == Where::records || where_ == Where::top) return false;
    if (slot_ == Slot::code) return false;
    // null msg is "", null data an empty page, null records none, a null Long absent.
    return true;
}

bool MemberPageHandler::scalar_long(int64_t v) {
    if (skip_ > 0) return true;
    if (where_ == Where::records || where_ == Where::top) return false;
    if (slot_ == Slot::code) {
        if (v < INT_MIN || v > INT_MAX) return false;
        code_ = v;
        return true;
    }
    if (slot_ == Slot::msg || slot_ == Slot::data || slot_ == Slot::records) return false;
    if (LongField* f = long_slot()) f->set(v);
    return true;
}

bool MemberPageHandler::scalar_other() {
    if (skip_ > 0) return true;
    if (where_ == Where::records || where_ == Where::top) return false;
    if (LongField* f = long_slot()) f->set_unusable();
    return slot_ == Slot::none || long_slot() != nullptr;
}

bool MemberPageHandler::string(json::string_t& s) {
    if (skip_ > 0) return true;
    if (where_ == Where::records || where_ == Where::top) return false;
    if (slot_ == Slot::msg) {
        msg_ = std::move(s);
        return true;
    }
    LongField* f = long_slot();
    if (!f) return slot_ == Slot::none;
    if (auto v = long_of_text(s)) f->set(*v);
    else if (s.empty()) f->non_null = true;  // get_long: an empty string is absent
    else f->set_unusable();
    return true;
}

bool MemberPageHandler::start_object(std::size_t) {
    if (skip_ > 0) return skip_container();
    switch (where_) {
    case Where::top: return enter(Where::envelope);
    case Where::envelope:
        if (slot_ == Slot::data) return enter(Where::data);
        return slot_ == Slot::none && skip_container();
    case Where::data: return slot_ == Slot::none && skip_container();
    case Where::records:
        customer_id_ = id_ = named_id_ = LongField{};
        return enter(Where::record);
    case Where::record:
        if (long_slot()) return false;  // an id that is an object: the DOM path words it
        return skip_container();
    default: return false;
    }
}

bool MemberPageHandler::start_array(std::size_t) {
    if (skip_ > 0) return skip_container();
    switch (where_) {
    case Where::envelope: return slot_ == Slot::none && skip_container();
    case Where::data:
        if (slot_ == Slot::records) return enter(Where::records);
        return slot_ == Slot::none && skip_container();
    case Where::record:
        if (long_slot()) return false;
        return skip_container();
    default: return false;
    }
}

bool MemberPageHandler::end_object() {
    --depth_;
    if (skip_ > 0) return --skip_, true;
    switch (where_) {
    case Where::envelope: where_ = Where::done; return true;
    case Where::data: where_ = Where::envelope; slot_ = Slot::none; return true;
    case Where::record: where_ = Where::records; return record_done();
    default: return false;
    }
}

bool MemberPageHandler::end_array() {
    --depth_;
    if (skip_ > 0) return --skip_, true;
    if (where_ != Where::records) return false;
    where_ = Where::data;
    slot_ = Slot::none;
    return true;
}

// parse_member's choice: the named field alone, else customerId when present and not null,
// else id. Any record parse_member would refuse is left to the DOM path.
bool MemberPageHandler::record_done() {
    const LongField& f = !id_field_.empty() ? named_id_ : customer_id_.non_null ? customer_id_ : id_;
    if (f.state != LongField::State::value) return false;
    reply_.page.records.push_back(Member{f.value, json()});
    return true;
}

std::optional<MemberPageReply> MemberPageHandler::finish() {
    if (where_ != Where::done || !code_seen_ || code_ != 0) return std::nullopt;
    for (const LongField* f : {&current_, &size_, &total_})
        if (f->state == LongField::State::unusable) return std::nullopt;
    reply_.msg = std::move(msg_);
    Page<Member>& page = reply_.page;
    page.current = current_.state == LongField::State::value ? current_.value : 0;
    page.size = size_.state == LongField::State::value ? size_.value : 0;
    page.total = total_.state == LongField::State::value ? total_.value : 0;
    return std::move(reply_);
}

// Feeds `handler` the SAX events of a parsed value; false when the handler stops.
// `text` carries keys and strings (reused, the handler may move a string out of it).
bool walk(simdjson::dom::element e, MemberPageHandler& handler, std::string& text) {
    using Type = simdjson::dom::element_type;
    switch (e.type()) {
    case Type::OBJECT:
        if (!handler.start_object(std::size_t(-1))) return false;
        for (simdjson::dom::key_value_pair field : simdjson::dom::object(e)) {
            text.assign(field.key);
            if (!handler.key(text) || !walk(field.value, handler, text)) return false;
        }
        return handler.end_object();
    case Type::ARRAY:
        if (!handler.start_array(std::size_t(-1))) return false;
        for (simdjson::dom::element item : simdjson::dom::array(e))
            if (!walk(item, handler, text)) return false;
        return handler.end_array();
    case Type::STRING: text.assign(std::string_view(e)); return handler.string(text);
    case Type::INT64: return handler.number_integer(int64_t(e));
    case Type::UINT64: return handler.number_unsigned(uint64_t(e));
    case Type::DOUBLE: text.clear(); return handler.number_float(double(e), text);
    case Type::BOOL: return handler.boolean(bool(e));
    case Type::NULL_VALUE: return handler.null();
    }
    return false;
}

// The handler's events from simdjson; nullopt when simdjson cannot be trusted to agree with
// nlohmann on this body (a \u escape) or refuses it (nlohmann then decides).
std::optional<bool> walk_simd(std::string_view body, MemberPageHandler& handler) {
    if (body.find("\\u") != std::string_view::npos) return std::nullopt;
    // One parser a thread, reused: its buffers grow to the largest page once.
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
    std::string text;
    return walk(root, handler, text);
}

}  // namespace

std::optional<MemberPageReply> read_member_page_fast(std::string_view body, const std::string& id_field) {
    {
        MemberPageHandler handler(id_field);
        if (std::optional<bool> walked = walk_simd(body, handler)) {
            if (!*walked) return std::nullopt;
            return handler.finish();
        }
    }
    MemberPageHandler handler(id_field);
    if (!json::sax_parse(body.begin(), body.end(), &handler)) return std::nullopt;
    return handler.finish();
}

}  // namespace cdpsync::cdp
