#include "state/kv_store.hpp"

#include <algorithm>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

namespace eddy {

namespace {
// The one place rocksdb::Status becomes eddy's status.
store_status translate(const rocksdb::Status& s, std::string_view what, const std::string& path) {
  if (s.ok()) return {};
  return {std::string(what) + " " + path + ": " + s.ToString()};
}
}  // namespace

struct kv_store::impl {
  std::shared_ptr<rocksdb::Cache> block_cache;  // declared before db: outlives it
  std::unique_ptr<rocksdb::DB> db;
  bool disable_wal = false;
  bool write_mostly = false;
};

kv_store::kv_store(std::unique_ptr<impl> p, std::string path)
    : impl_(std::move(p)), path_(std::move(path)) {}
kv_store::~kv_store() = default;

std::unique_ptr<kv_store> kv_store::open(const std::string& path, store_status* status) {
  return open(path, kv_options{}, status);
}

std::unique_ptr<kv_store> kv_store::open(const std::string& path, const kv_options& options,
                                         store_status* status) {
  constexpr std::size_t min_bytes = std::size_t{1} << 20;
  auto p = std::make_unique<impl>();
  p->disable_wal = options.disable_wal;
  p->write_mostly = options.write_mostly;
  p->block_cache = rocksdb::NewLRUCache(std::max(options.block_cache_bytes, min_bytes));

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = p->block_cache;
  table.cache_index_and_filter_blocks = true;  // their memory counts against the cache budget
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Backed aggregation state looks up every new key before it exists: bloom filters answer
  // most of those misses without reading a block.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));

  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  const std::size_t write_budget = std::max(options.write_buffer_bytes, min_bytes);
  opts.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(write_budget);
  opts.write_buffer_size = write_budget / 2;
  opts.max_write_buffer_number = 2;
  opts.target_file_size_base = std::uint64_t{4} << 20;
  opts.level_compaction_dynamic_level_bytes = true;
  if (options.write_mostly) {
    opts.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
    opts.allow_concurrent_memtable_write = false;  // the vector memtable is not concurrent
  } else {
    opts.memtable_prefix_bloom_size_ratio = 0.05;  // a bloom filter over the memtable's keys too
    opts.memtable_whole_key_filtering = true;
  }

  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, path, &db);
  *status = translate(s, "open", path);
  if (!s.ok()) return nullptr;
  p->db.reset(db);
  return std::unique_ptr<kv_store>(new kv_store(std::move(p), path));
}

store_status kv_store::write_batch(const std::vector<kv_op>& ops, bool sync) {
  // Range deletes first (kv_op's contract), then the rest in key order (stable: ops on one key
  // keep their order): the memtable's skip list inserts a run of ascending keys next to the
  // previous one instead of searching from the top for each, which made a checkpoint of ~100k
  // fresh keys spend most of its time in the search.
  std::vector<uint32_t> order;
  order.reserve(ops.size());
  size_t bytes = 0;
  for (uint32_t i = 0; i < ops.size(); ++i) {
    const kv_op& op = ops[i];
    bytes += op.key.size() + op.range_end.size() + (op.value ? op.value->size() : 0) + 16;
    if (!op.is_range()) order.push_back(i);
  }
  if (!impl_->write_mostly) {  // a vector memtable is sorted once, at flush
    std::stable_sort(order.begin(), order.end(),
                     [&ops](uint32_t a, uint32_t b) { return ops[a].key < ops[b].key; });
  }
  rocksdb::WriteBatch batch(bytes);
  for (const kv_op& op : ops) {
    if (!op.is_range()) continue;
    if (auto s = batch.DeleteRange(op.key, op.range_end); !s.ok())
      return translate(s, "write batch", path_);
  }
  for (const uint32_t i : order) {
    const kv_op& op = ops[i];
    rocksdb::Status s = op.value ? batch.Put(op.key, *op.value) : batch.Delete(op.key);
    if (!s.ok()) return translate(s, "write batch", path_);
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync && !impl_->disable_wal;
  wo.disableWAL = impl_->disable_wal;
  return translate(impl_->db->Write(wo, &batch), "write", path_);
}

std::optional<std::string> kv_store::get(std::string_view key, store_status* status) const {
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) {
    *status = {};
    return std::nullopt;
  }
  *status = translate(s, "read", path_);
  if (!s.ok()) return std::nullopt;
  return value;
}

std::vector<std::pair<std::string, std::string>> kv_store::scan(std::string_view prefix,
                                                                store_status* status) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    if (!it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  *status = translate(it->status(), "scan", path_);
  return out;
}

store_status kv_store::scan_each(
    std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& f,
    std::string_view from) const {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  const std::string_view start = from > prefix ? from : prefix;
  for (it->Seek(rocksdb::Slice(start.data(), start.size())); it->Valid(); it->Next()) {
    if (!it->key().starts_with(p)) break;
    if (!f(std::string_view(it->key().data(), it->key().size()),
           std::string_view(it->value().data(), it->value().size())))
      break;
  }
  return translate(it->status(), "scan", path_);
}

store_status kv_store::flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return translate(impl_->db->Flush(fo), "flush", path_);
}

store_status kv_store::compact_all() {
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return translate(impl_->db->CompactRange(co, nullptr, nullptr), "compact", path_);
}

std::uint64_t kv_store::approximate_memory_bytes() const {
  std::uint64_t total = 0;
  for (const std::string* property : {&rocksdb::DB::Properties::kSizeAllMemTables,
                                      &rocksdb::DB::Properties::kEstimateTableReadersMem}) {
    std::uint64_t v = 0;
    if (impl_->db->GetAggregatedIntProperty(*property, &v)) total += v;
  }
  return total + impl_->block_cache->GetUsage();
}

store_status kv_store::checkpoint_to(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(impl_->db.get(), &raw);
  if (!s.ok()) return translate(s, "checkpoint", path_);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: always flush, so the copy needs no WAL replay.
  return translate(checkpoint->CreateCheckpoint(dir, 0), "checkpoint " + path_ + " to", dir);
}

}  // namespace eddy
