#include "model/filter_expr.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <compare>
#include <cstdint>
#include <utility>

#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"

namespace eddy {

namespace {

// ---- three-valued logic -----------------------------------------------------------------------

enum class tri : uint8_t { no, yes, unknown };

tri tri_not(tri t) {
  switch (t) {
    case tri::no:
      return tri::yes;
    case tri::yes:
      return tri::no;
    case tri::unknown:
      return tri::unknown;
  }
  return tri::unknown;
}

// ---- the compiled program ---------------------------------------------------------------------

enum class node_kind : uint8_t {
  constant,     // `truth`
  and_op,       // left, right
  or_op,        // left, right
  not_op,       // left
  is_null,      // lhs
  is_not_null,  // lhs
  compare,      // lhs op rhs, compared as `cls`
  in_list,      // lhs in list, compared as `cls`
  bool_value,   // lhs, a bool operand used as a condition
};

enum class cmp_op : uint8_t { eq, ne, lt, le, gt, ge };

/// How two operands are compared; fixed at compile time from the declared types.
enum class cmp_class : uint8_t { numeric, string, boolean, timestamp };

/// A field (index >= 0) or a constant.
struct operand {
  int32_t field = -1;
  value constant;
};

struct node {
  node_kind kind = node_kind::constant;
  cmp_op op = cmp_op::eq;
  cmp_class cls = cmp_class::numeric;
  tri truth = tri::yes;
  uint32_t left = 0;
  uint32_t right = 0;
  operand lhs;
  operand rhs;
  std::vector<value> list;
};

const value& null_value() {
  static const value v;
  return v;
}

const value& fetch(const operand& o, const row& r) {
  if (o.field < 0) return o.constant;
  const auto i = static_cast<std::size_t>(o.field);
  return i < r.size() ? r[i] : null_value();
}

bool apply(cmp_op op, std::partial_ordering ord) {
  switch (op) {
    case cmp_op::eq:
      return ord == 0;
    case cmp_op::ne:
      return ord != 0;  // true for unordered (NaN), as in IEEE and SQL
    case cmp_op::lt:
      return ord < 0;
    case cmp_op::le:
      return ord <= 0;
    case cmp_op::gt:
      return ord > 0;
    case cmp_op::ge:
      return ord >= 0;
  }
  return false;
}

/// Compares two non-null values of class `cls`; nullopt when a value is not of the class
/// (which a well-formed row never produces) so that it reads as unknown.
std::optional<std::partial_ordering> order(cmp_class cls, const value& a, const value& b) {
  switch (cls) {
    case cmp_class::numeric: {
      const auto* ai = std::get_if<int64_t>(&a);
      const auto* bi = std::get_if<int64_t>(&b);
      if (ai != nullptr && bi != nullptr) return *ai <=> *bi;
      double x = 0;
      double y = 0;
      if (ai != nullptr) {
        x = static_cast<double>(*ai);
      } else if (const auto* ad = std::get_if<double>(&a)) {
        x = *ad;
      } else {
        return std::nullopt;
      }
      if (bi != nullptr) {
        y = static_cast<double>(*bi);
      } else if (const auto* bd = std::get_if<double>(&b)) {
        y = *bd;
      } else {
        return std::nullopt;
      }
      return x <=> y;
    }
    case cmp_class::string: {
      const auto* as = std::get_if<std::string>(&a);
      const auto* bs = std::get_if<std::string>(&b);
      if (as == nullptr || bs == nullptr) return std::nullopt;
      const int c = as->compare(*bs);
      return c < 0 ? std::partial_ordering::less
                   : (c > 0 ? std::partial_ordering::greater : std::partial_ordering::equivalent);
    }
    case cmp_class::boolean: {
      const auto* ab = std::get_if<bool>(&a);
      const auto* bb = std::get_if<bool>(&b);
      if (ab == nullptr || bb == nullptr) return std::nullopt;
      return *ab <=> *bb;
    }
    case cmp_class::timestamp: {
      const auto* at = std::get_if<timestamp>(&a);
      const auto* bt = std::get_if<timestamp>(&b);
      if (at == nullptr || bt == nullptr) return std::nullopt;
      return at->micros <=> bt->micros;
    }
  }
  return std::nullopt;
}

tri eval(const std::vector<node>& nodes, uint32_t index, const row& r) {
  const node& n = nodes[index];
  switch (n.kind) {
    case node_kind::constant:
      return n.truth;
    case node_kind::and_op: {
      const tri a = eval(nodes, n.left, r);
      if (a == tri::no) return tri::no;
      const tri b = eval(nodes, n.right, r);
      if (b == tri::no) return tri::no;
      return (a == tri::yes && b == tri::yes) ? tri::yes : tri::unknown;
    }
    case node_kind::or_op: {
      const tri a = eval(nodes, n.left, r);
      if (a == tri::yes) return tri::yes;
      const tri b = eval(nodes, n.right, r);
      if (b == tri::yes) return tri::yes;
      return (a == tri::no && b == tri::no) ? tri::no : tri::unknown;
    }
    case node_kind::not_op:
      return tri_not(eval(nodes, n.left, r));
    case node_kind::is_null:
      return is_null(fetch(n.lhs, r)) ? tri::yes : tri::no;
    case node_kind::is_not_null:
      return is_null(fetch(n.lhs, r)) ? tri::no : tri::yes;
    case node_kind::compare: {
      const value& a = fetch(n.lhs, r);
      const value& b = fetch(n.rhs, r);
      if (is_null(a) || is_null(b)) return tri::unknown;
      const auto ord = order(n.cls, a, b);
      if (!ord) return tri::unknown;
      return apply(n.op, *ord) ? tri::yes : tri::no;
    }
    case node_kind::in_list: {
      const value& a = fetch(n.lhs, r);
      if (is_null(a)) return tri::unknown;
      for (const value& candidate : n.list) {
        const auto ord = order(n.cls, a, candidate);
        if (!ord) return tri::unknown;
        if (*ord == 0) return tri::yes;
      }
      return tri::no;
    }
    case node_kind::bool_value: {
      const auto* b = std::get_if<bool>(&fetch(n.lhs, r));
      if (b == nullptr) return tri::unknown;
      return *b ? tri::yes : tri::no;
    }
  }
  return tri::unknown;
}

// ---- lexer ------------------------------------------------------------------------------------

enum class tok : uint8_t {
  end,
  identifier,  // text = name (back-quotes removed)
  integer,     // int_value
  decimal,     // double_value
  string,      // text = unescaped contents
  kw_and,
  kw_or,
  kw_not,
  kw_in,
  kw_is,
  kw_null,
  kw_true,
  kw_false,
  op_eq,
  op_ne,
  op_lt,
  op_le,
  op_gt,
  op_ge,
  amp_amp,
  bar_bar,
  bang,
  lparen,
  rparen,
  comma,
};

struct token {
  tok kind = tok::end;
  std::size_t column = 0;   // 1-based
  std::string_view source;  // the token as written
  std::string text;
  int64_t int_value = 0;
  double double_value = 0;
};

std::string at_column(std::size_t column) {
  return " at column " + std::to_string(column);
}

bool is_ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_';
}
bool is_ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<tok> keyword(std::string_view word) {
  const std::string w = lower(word);
  if (w == "and") return tok::kw_and;
  if (w == "or") return tok::kw_or;
  if (w == "not") return tok::kw_not;
  if (w == "in") return tok::kw_in;
  if (w == "is") return tok::kw_is;
  if (w == "null") return tok::kw_null;
  if (w == "true") return tok::kw_true;
  if (w == "false") return tok::kw_false;
  return std::nullopt;
}

/// Splits `text` into tokens; false (with `error`) on a lexical error.
bool lex(std::string_view text, std::vector<token>& out, std::string& error) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto peek = [&](std::size_t k) { return i + k < n ? text[i + k] : '\0'; };
  while (true) {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    token t;
    t.column = i + 1;
    if (i >= n) {
      t.kind = tok::end;
      out.push_back(std::move(t));
      return true;
    }
    const std::size_t start = i;
    const char c = text[i];
    if (is_ident_start(c)) {
      while (i < n && is_ident_char(text[i])) ++i;
      t.source = text.substr(start, i - start);
      if (auto kw = keyword(t.source)) {
        t.kind = *kw;
      } else {
        t.kind = tok::identifier;
        t.text = std::string(t.source);
      }
    } else if (c == '`') {
      ++i;
      while (i < n && text[i] != '`') ++i;
      if (i >= n) {
        error = "unterminated back-quoted name" + at_column(t.column);
        return false;
      }
      ++i;
      t.kind = tok::identifier;
      t.source = text.substr(start, i - start);
      t.text = std::string(text.substr(start + 1, i - start - 2));
    } else if (is_digit(c) || ((c == '-' || c == '.') &&
                               (is_digit(peek(1)) || (peek(1) == '.' && is_digit(peek(2)))))) {
      bool is_decimal = false;
      if (text[i] == '-') ++i;
      while (i < n && is_digit(text[i])) ++i;
      if (i < n && text[i] == '.') {
        is_decimal = true;
        ++i;
        while (i < n && is_digit(text[i])) ++i;
      }
      if (i < n && (text[i] == 'e' || text[i] == 'E')) {
        std::size_t j = i + 1;
        if (j < n && (text[j] == '+' || text[j] == '-')) ++j;
        if (j < n && is_digit(text[j])) {
          is_decimal = true;
          i = j;
          while (i < n && is_digit(text[i])) ++i;
        }
      }
      while (i < n && (is_ident_char(text[i]) || text[i] == '.')) ++i;
      t.source = text.substr(start, i - start);
      const char* first = t.source.data();
      const char* last = first + t.source.size();
      std::from_chars_result res{};
      if (is_decimal) {
        t.kind = tok::decimal;
        res = std::from_chars(first, last, t.double_value);
      } else {
        t.kind = tok::integer;
        res = std::from_chars(first, last, t.int_value);
      }
      if (res.ec == std::errc::result_out_of_range) {
        error = "number '" + std::string(t.source) + "'" + at_column(t.column) + " is out of range";
        return false;
      }
      if (res.ec != std::errc{} || res.ptr != last) {
        error = "malformed number '" + std::string(t.source) + "'" + at_column(t.column);
        return false;
      }
    } else if (c == '"' || c == '\'') {
      const char quote = c;
      ++i;
      bool closed = false;
      while (i < n) {
        const char ch = text[i];
        if (ch == quote) {
          closed = true;
          ++i;
          break;
        }
        if (ch == '\\') {
          if (i + 1 >= n) break;
          const char e = text[i + 1];
          switch (e) {
            case '\\':
              t.text += '\\';
              break;
            case '"':
              t.text += '"';
              break;
            case '\'':
              t.text += '\'';
              break;
            case 'n':
              t.text += '\n';
              break;
            case 't':
              t.text += '\t';
              break;
            case 'r':
              t.text += '\r';
              break;
            default:
              error = std::string("unknown escape '\\") + e + "'" + at_column(i + 1) +
                      " (use \\\\ \\\" \\' \\n \\t \\r)";
              return false;
          }
          i += 2;
          continue;
        }
        t.text += ch;
        ++i;
      }
      if (!closed) {
        error = "unterminated string" + at_column(t.column);
        return false;
      }
      t.kind = tok::string;
      t.source = text.substr(start, i - start);
    } else {
      auto two = [&](char a, char b) { return c == a && peek(1) == b; };
      std::size_t len = 2;
      if (two('=', '=')) {
        t.kind = tok::op_eq;
      } else if (two('!', '=') || two('<', '>')) {
        t.kind = tok::op_ne;
      } else if (two('<', '=')) {
        t.kind = tok::op_le;
      } else if (two('>', '=')) {
        t.kind = tok::op_ge;
      } else if (two('&', '&')) {
        t.kind = tok::amp_amp;
      } else if (two('|', '|')) {
        t.kind = tok::bar_bar;
      } else {
        len = 1;
        switch (c) {
          case '=':
            t.kind = tok::op_eq;
            break;
          case '<':
            t.kind = tok::op_lt;
            break;
          case '>':
            t.kind = tok::op_gt;
            break;
          case '!':
            t.kind = tok::bang;
            break;
          case '(':
            t.kind = tok::lparen;
            break;
          case ')':
            t.kind = tok::rparen;
            break;
          case ',':
            t.kind = tok::comma;
            break;
          default: {
            const auto uc = static_cast<unsigned char>(c);
            error = "unexpected character";
            if (uc >= 0x20 && uc < 0x7f) error += std::string(" '") + c + "'";
            error += at_column(t.column);
            if (c == '&' || c == '|') error += std::string(" (did you mean '") + c + c + "'?)";
            return false;
          }
        }
      }
      i += len;
      t.source = text.substr(start, len);
    }
    out.push_back(std::move(t));
  }
}

// ---- parser -----------------------------------------------------------------------------------

/// An operand as parsed, with what type checking needs.
struct parsed_operand {
  operand o;
  std::optional<field_type> type;  // nullopt for the null literal
  bool is_literal = false;
  std::string name;  // field name, for messages
  std::size_t column = 0;
};

bool is_numeric(field_type t) {
  return t == field_type::int64 || t == field_type::float64;
}

std::string describe(const parsed_operand& p) {
  if (!p.is_literal) return std::string(to_string(*p.type)) + " field '" + p.name + "'";
  if (!p.type) return "null";
  switch (*p.type) {
    case field_type::string:
      return "a string";
    case field_type::int64:
      return "an integer";
    case field_type::float64:
      return "a number";
    case field_type::boolean:
      return "a bool";
    case field_type::timestamp:
      return "a timestamp";
  }
  return "a value";
}

std::string describe(const token& t) {
  if (t.kind == tok::end) return "the end of the expression";
  return "'" + std::string(t.source) + "'";
}

cmp_op to_cmp(tok k) {
  switch (k) {
    case tok::op_ne:
      return cmp_op::ne;
    case tok::op_lt:
      return cmp_op::lt;
    case tok::op_le:
      return cmp_op::le;
    case tok::op_gt:
      return cmp_op::gt;
    case tok::op_ge:
      return cmp_op::ge;
    default:
      return cmp_op::eq;
  }
}

bool is_cmp(tok k) {
  return k == tok::op_eq || k == tok::op_ne || k == tok::op_lt || k == tok::op_le ||
         k == tok::op_gt || k == tok::op_ge;
}

constexpr int max_depth = 200;
constexpr std::size_t max_nodes = 10'000;  // bounds evaluation's recursion through and/or chains

class parser {
 public:
  parser(std::vector<token> tokens, const std::vector<field_config>& fields)
      : tokens_(std::move(tokens)), fields_(fields) {}

  /// The root node's index, or nullopt with error().
  std::optional<uint32_t> parse() {
    auto root = parse_or(0);
    if (!root || !error_.empty()) return std::nullopt;
    if (peek().kind != tok::end) {
      const token& t = peek();
      if (t.kind == tok::rparen) {
        return fail("unmatched ')'" + at_column(t.column));
      }
      return fail("unexpected " + describe(t) + at_column(t.column) +
                  " after the end of the expression" +
                  (is_cmp(t.kind) ? "" : "; join conditions with 'and' or 'or'"));
    }
    return root;
  }

  std::vector<node>& nodes() { return nodes_; }
  const std::string& error() const { return error_; }

 private:
  const token& peek() const { return tokens_[pos_]; }
  const token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  std::nullopt_t fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return std::nullopt;
  }

  uint32_t add(node n) {
    if (nodes_.size() >= max_nodes && error_.empty()) {
      error_ = "expression too long (more than " + std::to_string(max_nodes) + " terms)";
    }
    nodes_.push_back(std::move(n));
    return static_cast<uint32_t>(nodes_.size() - 1);
  }

  uint32_t add_binary(node_kind kind, uint32_t left, uint32_t right) {
    node n;
    n.kind = kind;
    n.left = left;
    n.right = right;
    return add(std::move(n));
  }

  std::optional<uint32_t> parse_or(int depth) {
    auto left = parse_and(depth);
    if (!left) return std::nullopt;
    while (peek().kind == tok::kw_or || peek().kind == tok::bar_bar) {
      next();
      auto right = parse_and(depth);
      if (!right) return std::nullopt;
      left = add_binary(node_kind::or_op, *left, *right);
    }
    return left;
  }

  std::optional<uint32_t> parse_and(int depth) {
    auto left = parse_not(depth);
    if (!left) return std::nullopt;
    while (peek().kind == tok::kw_and || peek().kind == tok::amp_amp) {
      next();
      auto right = parse_not(depth);
      if (!right) return std::nullopt;
      left = add_binary(node_kind::and_op, *left, *right);
    }
    return left;
  }

  std::optional<uint32_t> parse_not(int depth) {
    if (depth > max_depth) return fail("expression nested too deeply" + at_column(peek().column));
    if (peek().kind == tok::kw_not || peek().kind == tok::bang) {
      next();
      auto inner = parse_not(depth + 1);
      if (!inner) return std::nullopt;
      node n;
      n.kind = node_kind::not_op;
      n.left = *inner;
      return add(std::move(n));
    }
    return parse_predicate(depth);
  }

  std::optional<uint32_t> parse_predicate(int depth) {
    if (peek().kind == tok::lparen) {
      const token& open = next();
      auto inner = parse_or(depth + 1);
      if (!inner) return std::nullopt;
      if (peek().kind != tok::rparen) {
        return fail("expected ')'" + at_column(peek().column) + " to close the '(' at column " +
                    std::to_string(open.column) + ", got " + describe(peek()));
      }
      next();
      return inner;
    }
    auto lhs = parse_operand();
    if (!lhs) return std::nullopt;
    const token& t = peek();
    if (is_cmp(t.kind)) {
      next();
      auto rhs = parse_operand();
      if (!rhs) return std::nullopt;
      return build_compare(*lhs, t, *rhs);
    }
    if (t.kind == tok::kw_is) {
      next();
      bool negated = false;
      if (peek().kind == tok::kw_not) {
        next();
        negated = true;
      }
      if (peek().kind != tok::kw_null) {
        return fail("expected 'null'" + at_column(peek().column) + " after 'is" +
                    (negated ? " not" : "") + "', got " + describe(peek()));
      }
      next();
      node n;
      n.kind = negated ? node_kind::is_not_null : node_kind::is_null;
      n.lhs = lhs->o;
      return add(std::move(n));
    }
    if (t.kind == tok::kw_in || (t.kind == tok::kw_not && tokens_[pos_ + 1].kind == tok::kw_in)) {
      bool negated = false;
      if (t.kind == tok::kw_not) {
        next();
        negated = true;
      }
      next();  // 'in'
      auto in = parse_in_list(*lhs);
      if (!in || !negated) return in;
      node n;
      n.kind = node_kind::not_op;
      n.left = *in;
      return add(std::move(n));
    }
    // A bare operand is a condition only when it is a bool.
    if (lhs->type == field_type::boolean) {
      node n;
      if (lhs->is_literal) {
        n.kind = node_kind::constant;
        n.truth = std::get<bool>(lhs->o.constant) ? tri::yes : tri::no;
      } else {
        n.kind = node_kind::bool_value;
        n.lhs = lhs->o;
      }
      return add(std::move(n));
    }
    return fail("expected a comparison" + at_column(t.column) + " after " + describe(*lhs) +
                ", got " + describe(t));
  }

  std::optional<parsed_operand> parse_operand() {
    const token& t = next();
    parsed_operand p;
    p.column = t.column;
    p.is_literal = true;
    switch (t.kind) {
      case tok::identifier: {
        p.is_literal = false;
        for (std::size_t i = 0; i < fields_.size(); ++i) {
          if (fields_[i].name == t.text) {
            p.o.field = static_cast<int32_t>(i);
            p.type = fields_[i].type;
            p.name = t.text;
            return p;
          }
        }
        std::vector<std::string_view> names;
        names.reserve(fields_.size());
        for (const auto& f : fields_) names.push_back(f.name);
        std::string message = "unknown field '" + t.text + "'" + at_column(t.column);
        const std::string hint = closest_name(t.text, names);
        if (!hint.empty()) {
          message += "; did you mean '" + hint + "'?";
        } else if (!names.empty()) {
          message += "; declared fields:";
          for (std::size_t i = 0; i < names.size() && i < 12; ++i) {
            message += (i == 0 ? " " : ", ") + std::string(names[i]);
          }
          if (names.size() > 12) message += ", ...";
        }
        return fail(std::move(message));
      }
      case tok::integer:
        p.type = field_type::int64;
        p.o.constant = t.int_value;
        return p;
      case tok::decimal:
        p.type = field_type::float64;
        p.o.constant = t.double_value;
        return p;
      case tok::string:
        p.type = field_type::string;
        p.o.constant = t.text;
        return p;
      case tok::kw_true:
      case tok::kw_false:
        p.type = field_type::boolean;
        p.o.constant = (t.kind == tok::kw_true);
        return p;
      case tok::kw_null:
        return p;  // type nullopt
      default:
        return fail("expected a field or a value" + at_column(t.column) + ", got " + describe(t));
    }
  }

  /// Checks that `a` and `b` can be compared with `op`; converts a string literal compared
  /// with a timestamp into a timestamp constant. `where` is the column reported on mismatch.
  std::optional<cmp_class> unify(parsed_operand& a, parsed_operand& b, const token& op_token,
                                 bool ordering) {
    if (!a.type || !b.type) {
      const std::size_t column = !a.type ? a.column : b.column;
      return fail("comparison with null" + at_column(column) +
                  " is never true; use 'is null' or 'is not null'");
    }
    auto to_timestamp = [&](parsed_operand& lit) -> bool {
      const auto& text = std::get<std::string>(lit.o.constant);
      const auto ts = parse_iso_timestamp(text);
      if (!ts) {
        fail("invalid timestamp \"" + text + "\"" + at_column(lit.column) +
             " (expected ISO-8601, e.g. \"2025-11-07T00:00:00Z\")");
        return false;
      }
      lit.o.constant = *ts;
      lit.type = field_type::timestamp;
      return true;
    };
    const field_type ta = *a.type;
    const field_type tb = *b.type;
    if (ta == field_type::timestamp && tb == field_type::string && b.is_literal) {
      if (!to_timestamp(b)) return std::nullopt;
      return cmp_class::timestamp;
    }
    if (tb == field_type::timestamp && ta == field_type::string && a.is_literal) {
      if (!to_timestamp(a)) return std::nullopt;
      return cmp_class::timestamp;
    }
    if (is_numeric(ta) && is_numeric(tb)) return cmp_class::numeric;
    if (ta == tb) {
      switch (ta) {
        case field_type::string:
          return cmp_class::string;
        case field_type::timestamp:
          return cmp_class::timestamp;
        case field_type::boolean:
          if (ordering) {
            return fail("operator '" + std::string(op_token.source) + "'" +
                        at_column(op_token.column) + " does not apply to bools; use = or !=");
          }
          return cmp_class::boolean;
        default:
          break;
      }
    }
    std::string message = "type mismatch" + at_column(b.column) + ": cannot compare " +
                          describe(a) + " with " + describe(b);
    if (ta == field_type::timestamp && is_numeric(tb) && b.is_literal) {
      message += " (write the instant as an ISO-8601 string, e.g. \"2025-11-07T00:00:00Z\")";
    }
    return fail(std::move(message));
  }

  std::optional<uint32_t> build_compare(parsed_operand lhs, const token& op_token,
                                        parsed_operand rhs) {
    const cmp_op op = to_cmp(op_token.kind);
    const bool ordering = op != cmp_op::eq && op != cmp_op::ne;
    auto cls = unify(lhs, rhs, op_token, ordering);
    if (!cls) return std::nullopt;
    node n;
    n.kind = node_kind::compare;
    n.op = op;
    n.cls = *cls;
    n.lhs = std::move(lhs.o);
    n.rhs = std::move(rhs.o);
    return add(std::move(n));
  }

  std::optional<uint32_t> parse_in_list(parsed_operand& lhs) {
    if (peek().kind != tok::lparen) {
      return fail("expected '('" + at_column(peek().column) + " after 'in', got " +
                  describe(peek()));
    }
    next();
    node n;
    n.kind = node_kind::in_list;
    bool first = true;
    while (true) {
      const token& t = peek();
      if (t.kind == tok::identifier) {
        return fail("expected a value" + at_column(t.column) +
                    " in the 'in' list, got a field name " + describe(t));
      }
      auto item = parse_operand();
      if (!item) return std::nullopt;
      token eq_token;
      eq_token.kind = tok::op_eq;
      eq_token.column = item->column;
      eq_token.source = "in";
      auto cls = unify(lhs, *item, eq_token, false);
      if (!cls) return std::nullopt;
      if (!first && *cls != n.cls) {
        return fail("type mismatch" + at_column(item->column) + ": mixed types in the 'in' list");
      }
      n.cls = *cls;
      first = false;
      n.list.push_back(std::move(item->o.constant));
      if (peek().kind == tok::comma) {
        next();
        continue;
      }
      if (peek().kind == tok::rparen) {
        next();
        break;
      }
      return fail("expected ',' or ')'" + at_column(peek().column) + " in the 'in' list, got " +
                  describe(peek()));
    }
    n.lhs = lhs.o;
    return add(std::move(n));
  }

  std::vector<token> tokens_;
  std::size_t pos_ = 0;
  const std::vector<field_config>& fields_;
  std::vector<node> nodes_;
  std::string error_;
};

}  // namespace

// ---- filter_expr ------------------------------------------------------------------------------

struct filter_expr::program {
  std::string text;
  std::vector<node> nodes;
  uint32_t root = 0;
};

std::optional<filter_expr> filter_expr::compile(std::string_view text,
                                                const std::vector<field_config>& fields,
                                                std::string* error) {
  auto set_error = [&](std::string message) {
    if (error != nullptr) *error = std::move(message);
  };
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; })) {
    return filter_expr{};
  }
  std::vector<token> tokens;
  std::string lex_error;
  if (!lex(text, tokens, lex_error)) {
    set_error(std::move(lex_error));
    return std::nullopt;
  }
  parser p(std::move(tokens), fields);
  const auto root = p.parse();
  if (!root) {
    set_error(p.error());
    return std::nullopt;
  }
  auto prog = std::make_shared<program>();
  prog->text = std::string(text);
  prog->nodes = std::move(p.nodes());
  prog->root = *root;
  filter_expr f;
  f.program_ = std::move(prog);
  return f;
}

std::optional<bool> filter_expr::evaluate(const row& r) const {
  if (program_ == nullptr) return true;
  switch (eval(program_->nodes, program_->root, r)) {
    case tri::yes:
      return true;
    case tri::no:
      return false;
    case tri::unknown:
      return std::nullopt;
  }
  return std::nullopt;
}

bool filter_expr::matches(const row& r) const {
  return program_ == nullptr || eval(program_->nodes, program_->root, r) == tri::yes;
}

std::string_view filter_expr::text() const {
  return program_ == nullptr ? std::string_view{} : std::string_view{program_->text};
}

// ---- suggestions ------------------------------------------------------------------------------

std::string closest_name(std::string_view word, const std::vector<std::string_view>& candidates,
                         std::size_t max_distance) {
  const std::string w = lower(word);
  std::string best;
  std::size_t best_distance = max_distance + 1;
  std::vector<std::size_t> prev;
  std::vector<std::size_t> cur;
  for (const std::string_view candidate : candidates) {
    const std::string c = lower(candidate);
    const std::size_t longest = std::max(w.size(), c.size());
    if (longest - std::min(w.size(), c.size()) > max_distance) continue;
    prev.resize(c.size() + 1);
    cur.resize(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= w.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        const std::size_t substitution = prev[j - 1] + (w[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitution});
      }
      std::swap(prev, cur);
    }
    const std::size_t d = prev[c.size()];
    // "ab" vs "id" is two edits but no useful hint: demand that most of the word survives.
    if (d < best_distance && 2 * d <= longest) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace eddy
