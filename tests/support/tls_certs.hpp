// A throwaway PKI for TLS tests: a CA and leaf certificates (with SAN DNS names and IP
// addresses) made with the OpenSSL 3 C API into a temporary directory, removed on
// destruction. No network, no openssl command line.
#pragma once

#include <string>
#include <vector>

namespace cdpsync::testing {

struct CertFiles {
    std::string cert_file;  // PEM certificate
    std::string key_file;   // PEM private key (unencrypted)
};

class TestPki {
public:
    TestPki();  // creates the directory and the CA ("cdp-sync test CA")
    ~TestPki();
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    const std::string& dir() const { return dir_; }
    const std::string& ca_file() const { return ca_.cert_file; }

    // A server certificate signed by the CA, valid for the given names and IP addresses.
    CertFiles issue(const std::string& name, const std::vector<std::string>& dns_names,
                    const std::vector<std::string>& ip_addresses);
    // A self-signed server certificate that no trust store knows.
    CertFiles self_signed(const std::string& name, const std::vector<std::string>& dns_names,
                          const std::vector<std::string>& ip_addresses);

private:
    std::string dir_;
    CertFiles ca_;
    long serial_ = 1;
};

}  // namespace cdpsync::testing
