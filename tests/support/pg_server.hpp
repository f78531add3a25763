// pg_server.hpp — a throw-away PostgreSQL server for tests, from Debian's server binaries.
//
// pg_server::start() runs `initdb` into a fresh /tmp/eddy-pg-XXXXXX (superuser "eddy", password
// `password()`; TCP connections need the password (scram-sha-256), the unix socket in the
// directory is trusted), then `pg_ctl start` on a free loopback port with its unix socket in the
// same directory (fsync off: tests only). As root, initdb and pg_ctl run as the `postgres` system
// user (initdb refuses root) through runuser. The destructor stops the server (immediate mode)
// and removes the directory (EDDY_KEEP_TEST_DIRS=1 keeps it).
// `missing()` says why there is no server to start (no binaries): tests GTEST_SKIP with it; any
// other failure is a test failure with the server's log. `query` runs SQL through libpq and
// returns the rows as text (NULL as "\N"). Header-only; one object per thread.
#pragma once

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace eddy::test {

class pg_server {
 public:
  pg_server() = default;
  ~pg_server() {
    if (!dir_.empty()) {
      if (running_) (void)stop("immediate");
      if (std::getenv("EDDY_KEEP_TEST_DIRS") == nullptr) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
      }
    }
  }
  pg_server(const pg_server&) = delete;
  pg_server& operator=(const pg_server&) = delete;

  /// Where the server binaries are ("" when PostgreSQL's server package is not installed).
  static std::string bin_dir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (const char* env = std::getenv("EDDY_PG_BIN"); env && fs::exists(fs::path(env) / "initdb"))
      return env;
    if (!fs::exists("/usr/lib/postgresql", ec)) return {};
    std::string best;
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec))
      if (fs::exists(e.path() / "bin/initdb") && fs::exists(e.path() / "bin/pg_ctl"))
        best = std::max(best, (e.path() / "bin").string());
    return best;
  }

  /// Why no server can be started here ("" = the binaries are there).
  static std::string missing() {
    if (!bin_dir().empty()) return {};
    return "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
           "(install the Debian package postgresql, or set EDDY_PG_BIN)";
  }

  /// initdb + start. "" or what went wrong (with the server's log).
  std::string start() {
    namespace fs = std::filesystem;
    bin_ = bin_dir();
    if (bin_.empty()) return missing();
    char tmpl[] = "/tmp/eddy-pg-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    write(dir_ + "/pwfile", password() + "\n");
    if (::geteuid() == 0) {
      if (std::system(("chown -R postgres:postgres " + dir_).c_str()) != 0)
        return "cannot chown " + dir_ + " to postgres";
      as_ = "runuser -u postgres -- ";
    }
    const std::string initdb = as_ + bin_ + "/initdb -D " + dir_ +
                               "/data -U eddy --pwfile=" + dir_ +
                               "/pwfile --auth-local=trust --auth-host=scram-sha-256 -E UTF8 "
                               "--locale=C --no-sync > " +
                               dir_ + "/initdb.log 2>&1";
    if (std::system(initdb.c_str()) != 0) return "initdb failed: " + read(dir_ + "/initdb.log");
    port_ = free_port();
    return start_again();
  }

  /// Starts the (stopped) server again on the same port. "" or the log.
  std::string start_again() {
    const std::string cmd = as_ + bin_ + "/pg_ctl -D " + dir_ + "/data -l " + dir_ +
                            "/server.log -w -t 60 -o \"-p " + std::to_string(port_) + " -k " +
                            dir_ +
                            " -c listen_addresses=127.0.0.1 -c fsync=off "
                            "-c full_page_writes=off -c max_connections=40\" start > " +
                            dir_ + "/pg_ctl.log 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return "pg_ctl start failed: " + read(dir_ + "/pg_ctl.log") + read(dir_ + "/server.log");
    running_ = true;
    return {};
  }

  /// pg_ctl stop -m <mode> ("fast" disconnects clients, "immediate" is like a crash). "" or why.
  std::string stop(const std::string& mode = "fast") {
    const std::string cmd = as_ + bin_ + "/pg_ctl -D " + dir_ + "/data -m " + mode +
                            " -w -t 60 stop > " + dir_ + "/pg_ctl.log 2>&1";
    running_ = false;
    if (std::system(cmd.c_str()) != 0) return "pg_ctl stop failed: " + read(dir_ + "/pg_ctl.log");
    return {};
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] static std::string password() { return "s3cret-eddy"; }
  /// A libpq conninfo for the test database over TCP, without the password.
  [[nodiscard]] std::string dsn(const std::string& db = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=eddy";
  }
  [[nodiscard]] std::string log() const { return read(dir_ + "/server.log"); }

  /// Rows of `sql` as text ("\N" for NULL); throws std::runtime_error with the server's message.
  std::vector<std::vector<std::string>> query(const std::string& sql) const {
    const std::string conninfo = dsn() + " password=" + password();
    PGconn* c = PQconnectdb(conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      std::string e = PQerrorMessage(c);
      PQfinish(c);
      throw std::runtime_error("connect: " + e);
    }
    PGresult* r = PQexec(c, sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string e = PQresultErrorMessage(r);
      PQclear(r);
      PQfinish(c);
      throw std::runtime_error(sql + ": " + e);
    }
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(r); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r); ++j)
        row.push_back(PQgetisnull(r, i, j) ? "\\N" : PQgetvalue(r, i, j));
      rows.push_back(std::move(row));
    }
    PQclear(r);
    PQfinish(c);
    return rows;
  }

 private:
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  std::string bin_, dir_, as_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace eddy::test
