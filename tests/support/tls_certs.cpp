#include "support/tls_certs.hpp"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace cdpsync::testing {

namespace {

struct Free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    void operator()(X509* p) const { X509_free(p); }
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
    void operator()(BIO* p) const { BIO_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

KeyPtr new_key() {
    KeyPtr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "EVP_EC_gen");
    return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// issuer == nullptr: self-signed with `key`.
CertPtr make_cert(const std::string& common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
                  bool ca, const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
    CertPtr cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 86400);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("cdp-sync tests"), -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                               -1, -1, 0);
    X509* signer = issuer ? issuer : cert.get();
    X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
    add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (ca) {
        add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_ext(cert.get(), signer, NID_ext_key_usage, "serverAuth");
        if (issuer) add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
        std::string san;
        for (const auto& d : dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
        for (const auto& ip : ips) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
        if (!san.empty()) add_ext(cert.get(), signer, NID_subject_alt_name, san);
    }
    check(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return cert;
}

void write_pem(const std::string& path, X509* cert) {
    std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "w"));
    check(bio != nullptr, "open certificate file");
    check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
}

void write_pem(const std::string& path, EVP_PKEY* key) {
    std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "w"));
    check(bio != nullptr, "open key file");
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
}

KeyPtr read_key(const std::string& path) {
    std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "r"));
    check(bio != nullptr, "open key file");
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    check(key != nullptr, "PEM_read_bio_PrivateKey");
    return key;
}

CertPtr read_cert(const std::string& path) {
    std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "r"));
    check(bio != nullptr, "open certificate file");
    CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    check(cert != nullptr, "PEM_read_bio_X509");
    return cert;
}

}  // namespace

TestPki::TestPki() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cdp-sync-pki-XXXXXX").string();
    check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    dir_ = pattern;
    ca_ = {dir_ + "/ca.pem", dir_ + "/ca.key"};
    auto key = new_key();
    auto cert = make_cert("cdp-sync test CA", key.get(), nullptr, nullptr, serial_++, true, {}, {});
    write_pem(ca_.cert_file, cert.get());
    write_pem(ca_.key_file, key.get());
}

TestPki::~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

CertFiles TestPki::issue(const std::string& name, const std::vector<std::string>& dns_names,
                         const std::vector<std::string>& ip_addresses) {
    auto ca_key = read_key(ca_.key_file);
    auto ca_cert = read_cert(ca_.cert_file);
    auto key = new_key();
    auto cert = make_cert(name, key.get(), ca_cert.get(), ca_key.get(), serial_++, false, dns_names, ip_addresses);
    CertFiles out{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
    write_pem(out.cert_file, cert.get());
    write_pem(out.key_file, key.get());
    return out;
}

CertFiles TestPki::self_signed(const std::string& name, const std::vector<std::string>& dns_names,
                               const std::vector<std::string>& ip_addresses) {
    auto key = new_key();
    auto cert = make_cert(name, key.get(), nullptr, nullptr, serial_++, false, dns_names, ip_addresses);
    CertFiles out{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
    write_pem(out.cert_file, cert.get());
    write_pem(out.key_file, key.get());
    return out;
}

}  // namespace cdpsync::testing
