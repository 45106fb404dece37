// Decoding member page replies (getCustomerPageByGroupId, 1000 simulator records a page):
// the DOM path (parse_envelope + parse_page + parse_member, what every page cost before)
// against read_member_page_fast (SAX, ids only), and the simulator writing such a page.
// Prints a markdown table: pages/s and MB/s on one core.
//
//   member_page_bench [pages per row, default 2000]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cdp/models.hpp"
#include "sim/state.hpp"

using namespace cdpsync;
using Clock = std::chrono::steady_clock;

namespace {

// A page as the simulator sends it: the envelope around 1000 customer records.
std::string page_body(int64_t first_customer, int records, bool with_internal_id) {
    std::string body = R"({"code":0,"msg":"success","data":{"current":1,"size":1000,"total":1000000,"pages":1000,"records":[)";
    for (int i = 0; i < records; ++i) {
        if (i) body += ',';
        sim::append_customer_record(body, first_customer + i, with_internal_id);
    }
    body += "]}}";
    return body;
}

int64_t decode_dom(const std::string& body) {
    cdp::Envelope env = cdp::parse_envelope(body);
    auto page = cdp::parse_page<cdp::Member>(env.data, [](const cdp::json& r) { return cdp::parse_member(r); });
    return page.records.back().customer_id;
}

int64_t decode_sax(const std::string& body) {
    auto reply = cdp::read_member_page_fast(body, "");
    if (!reply) {
        std::fprintf(stderr, "the fast path gave up on a simulator page\n");
        std::exit(1);
    }
    return reply->page.records.back().customer_id;
}

int64_t write_page(const std::string&) { return static_cast<int64_t>(page_body(1, 1000, true).size()); }

template <class F>
void row(const char* what, const std::vector<std::string>& bodies, int pages, F&& f) {
    int64_t sink = 0;
    size_t bytes = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < pages; ++i) {
        const std::string& body = bodies[static_cast<size_t>(i) % bodies.size()];
        sink += f(body);
        bytes += body.size();
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("| %s | %d | %.0f | %.1f | %.2f |\n", what, pages, pages / s, bytes / s / 1e6, s * 1e6 / pages);
    if (sink == 42) std::printf(" ");  // keeps the work observable
}

}  // namespace

int main(int argc, char** argv) {
    const int pages = argc > 1 ? std::atoi(argv[1]) : 2000;
    std::vector<std::string> plain, with_id;
    for (int i = 0; i < 8; ++i) {
        plain.push_back(page_body(1 + i * 1000, 1000, false));
        with_id.push_back(page_body(1 + i * 1000, 1000, true));
    }
    std::printf("page: 1000 records, %.0f kB\n\n", plain[0].size() / 1e3);
    std::printf("| decoder | pages | pages/s | MB/s | µs/page |\n|---|---:|---:|---:|---:|\n");
    row("DOM (parse_envelope + parse_page)", plain, pages, decode_dom);
    row("SAX read_member_page_fast", plain, pages, decode_sax);
    row("DOM, records with id + customerId", with_id, pages, decode_dom);
    row("SAX, records with id + customerId", with_id, pages, decode_sax);
    row("simulator writes a page", with_id, pages, write_page);
}
