//===- Generate.cpp - Prefill, decode and sampling ------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;

//===----------------------------------------------------------------------===//
// Sampling
//===----------------------------------------------------------------------===//

uint64_t Rng::next() {
  // SplitMix64 (Steele, Lea, Flood 2014): a Weyl sequence, then a mix.
  state += 0x9e3779b97f4a7c15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

Status rt::validateSampling(const SamplingOptions &o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0)
    return makeError("temperature must be a finite number >= 0, got ",
                     o.temperature);
  if (o.topK < 0)
    return makeError("top-k must be >= 0 (0: all ids), got ", o.topK);
  if (!std::isfinite(o.topP) || o.topP <= 0 || o.topP > 1)
    return makeError("top-p must be in (0, 1], got ", o.topP);
  return Status::success();
}

namespace {

/// What one pass over a row of values finds: the largest value that is not
/// NaN (-inf when there is none) and whether any is NaN.
struct RowScan {
  float max = -INFINITY;
  bool nan = false;
};

/// Values per step of the two loops below: independent lanes, so that
/// neither loop is one chain of dependent operations and the compiler
/// keeps each group of lanes in a vector register.
constexpr int64_t kScanLanes = 16;

/// Scans `values[0..n)` with kScanLanes running maxima and NaN flags (`x >
/// m ? x : m` is a vector max whose NaN input loses). A greedy decode step
/// scans each row of its logits (65536 floats for Jamba); with
/// firstIndexOf this replaces two scalar passes (NaN, then argmax) that
/// took 40 us per row on this project's CI machine, 1.3 ms per step at
/// batch 32 (`jamba-bench-sampling`).
RowScan scanRow(const float *values, int64_t n) {
  float max[kScanLanes];
  int32_t nan[kScanLanes];
  for (int64_t l = 0; l < kScanLanes; ++l)
    max[l] = -INFINITY, nan[l] = 0;
  int64_t i = 0;
  for (; i + kScanLanes <= n; i += kScanLanes)
    for (int64_t l = 0; l < kScanLanes; ++l) {
      float x = values[i + l];
      nan[l] |= x != x;
      max[l] = x > max[l] ? x : max[l];
    }
  for (int64_t l = 0; i < n; ++i, ++l) {
    float x = values[i];
    nan[l] |= x != x;
    max[l] = x > max[l] ? x : max[l];
  }
  RowScan scan;
  for (int64_t l = 0; l < kScanLanes; ++l) {
    scan.nan = scan.nan || nan[l] != 0;
    scan.max = max[l] > scan.max ? max[l] : scan.max;
  }
  return scan;
}

/// The lowest index whose value equals `max` (-1 when none does: a NaN
/// never equals; -0 equals +0): groups of kScanLanes compared whole until
/// one holds it, then that group in order.
int64_t firstIndexOf(const float *values, int64_t n, float max) {
  int64_t i = 0;
  for (; i + kScanLanes <= n; i += kScanLanes) {
    int32_t hit = 0;
    for (int64_t l = 0; l < kScanLanes; ++l)
      hit |= values[i + l] == max;
    if (hit)
      break;
  }
  for (; i < n; ++i)
    if (values[i] == max)
      return i;
  return -1;
}

/// Sorts `order`, ids in increasing order whose logits are finite, as
/// `logit[a] != logit[b] ? logit[a] > logit[b] : a < b` sorts them: a
/// stable LSD radix sort, four passes of 8 bits, on a 32-bit key that
/// orders the floats from the largest (-0 made +0, which compares equal),
/// so that equal logits keep the ids' increasing order. The same order as
/// the comparison sort it replaces, in linear time: std::sort of Jamba's
/// 65536 ids through that comparison took 5.7 ms per row on this project's
/// CI machine, 7 times a decode step of the Jamba-1.5-Mini stack on the
/// H200 at batch 1.
void sortByLogit(const float *logits, std::vector<int64_t> &order,
                 std::vector<uint32_t> &key, std::vector<uint32_t> &keyOut,
                 std::vector<int64_t> &idOut) {
  const size_t n = order.size();
  key.resize(n);
  keyOut.resize(n);
  idOut.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float v = logits[order[i]];
    if (v == 0.0f)
      v = 0.0f;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    // Increasing floats give increasing keys; inverted: the largest first.
    bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
    key[i] = ~bits;
  }
  for (int shift = 0; shift < 32; shift += 8) {
    size_t start[257] = {};
    for (size_t i = 0; i < n; ++i)
      ++start[((key[i] >> shift) & 0xffu) + 1];
    for (int d = 0; d < 256; ++d)
      start[d + 1] += start[d];
    for (size_t i = 0; i < n; ++i) {
      size_t at = start[(key[i] >> shift) & 0xffu]++;
      keyOut[at] = key[i];
      idOut[at] = order[i];
    }
    key.swap(keyOut);
    order.swap(idOut);
  }
}

} // namespace

int64_t rt::argmaxIndex(const float *values, int64_t n) {
  // Ties (-0 and +0 too) go to the lowest index; values that are all NaN
  // (or none) have no maximum.
  return firstIndexOf(values, n, scanRow(values, n).max);
}

StatusOr<int64_t> rt::sampleNext(const float *logits, int64_t vocab,
                                 const SamplingOptions &options, Rng &rng) {
  JAMBA_CKPT_RETURN_IF_ERROR(validateSampling(options));
  RowScan scan = scanRow(logits, vocab);
  if (scan.nan)
    for (int64_t i = 0; i < vocab; ++i)
      if (std::isnan(logits[i]))
        return makeError("the logits hold NaN (id ", i, ")");
  int64_t best = firstIndexOf(logits, vocab, scan.max);
  if (best < 0 || logits[best] == -INFINITY)
    return makeError("no id has a finite logit");
  // Greedy, or a +inf logit, which takes all the probability.
  if (options.isGreedy() || logits[best] == INFINITY)
    return best;

  // Scratch kept by the thread between calls: a decode step samples every
  // row, and fresh vectors of a vocabulary's size each time were mostly
  // page faults.
  thread_local struct {
    std::vector<int64_t> order, idOut;
    std::vector<uint32_t> key, keyOut;
    std::vector<double> prob;
  } scratch;
  std::vector<int64_t> &order = scratch.order;
  order.resize(size_t(vocab));
  size_t finite = 0;
  for (int64_t i = 0; i < vocab; ++i)
    if (logits[i] != -INFINITY)
      order[finite++] = i;
  order.resize(finite);
  auto before = [&](int64_t a, int64_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  size_t keep = order.size();
  if (options.topK > 0 && size_t(options.topK) < keep) {
    keep = size_t(options.topK);
    // Only order[0, keep) is read from here on (kept at its size: growing
    // it back for the next call would fill it).
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  } else {
    sortByLogit(logits, order, scratch.key, scratch.keyOut, scratch.idOut);
  }

  // Softmax of logit / temperature over the kept ids, in double.
  std::vector<double> &prob = scratch.prob;
  prob.resize(keep);
  double top = double(logits[order[0]]) / options.temperature, sum = 0;
  for (size_t i = 0; i < keep; ++i) {
    prob[i] = std::exp(double(logits[order[i]]) / options.temperature - top);
    sum += prob[i];
  }
  // A tiny temperature can overflow logit / temperature (inf - inf): such
  // a distribution is a point mass on the top id.
  if (!std::isfinite(top) || !std::isfinite(sum) || sum <= 0)
    return order[0];
  for (double &p : prob)
    p /= sum;

  // Top-p: the smallest prefix whose probability reaches top_p.
  if (options.topP < 1) {
    double cumulative = 0;
    size_t n = 0;
    while (n < keep) {
      cumulative += prob[n++];
      if (cumulative >= options.topP)
        break;
    }
    keep = n;
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i)
    total += prob[i];
  double u = rng.uniform() * total, cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += prob[i];
    if (u < cumulative)
      return order[i];
  }
  return order[keep - 1];
}

//===----------------------------------------------------------------------===//
// Generation
//===----------------------------------------------------------------------===//

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// A greedy id an entry point computed (Runner::readIds), checked. -1 says
/// the row of logits held a NaN or no finite value: `logits` (that row,
/// read when the id came back) tells sampleNext's message, which names
/// the NaN's id; logits with a greedy id after all mean a broken artifact,
/// as does an id outside the vocabulary.
StatusOr<int64_t> greedyIdOf(int32_t id, const std::vector<float> &logits,
                             int64_t vocab) {
  if (id < 0) {
    SamplingOptions greedy;
    Rng unused;
    StatusOr<int64_t> host = sampleNext(logits.data(), vocab, greedy, unused);
    if (!host.ok())
      return host.status();
    return makeError("the greedy id the artifact computed is ", id,
                     ", but its logits have one, ", *host);
  }
  if (id >= vocab)
    return makeError("the greedy id the artifact computed, ", id,
                     ", is outside the vocabulary [0, ", vocab, ")");
  return int64_t(id);
}

/// The refusals before anything runs (Generate.h).
Status checkRequest(const Executor &ex,
                    const std::vector<std::vector<int64_t>> &prompts,
                    const GenerateOptions &options) {
  const int64_t batch = static_cast<int64_t>(prompts.size());
  const int64_t vocab = ex.vocab();
  const int64_t n = options.maxNewTokens;
  if (batch == 0)
    return makeError("no prompt given");
  if (batch > ex.batch())
    return makeError(batch, " prompts but the session runs at most ",
                     ex.batch(), " sequences at once (its batch)");
  if (n < 0)
    return makeError("the number of ids to generate must be >= 0, got ", n);
  JAMBA_CKPT_RETURN_IF_ERROR(validateSampling(options.sampling));
  if (options.recordLogits && ex.prefillEntry().lastLogitsOnly)
    return makeError("the artifact's prefill keeps only the last position's "
                     "logits, so the logits of every prompt position cannot "
                     "be recorded (compile it with jamba-compile "
                     "--prefill-logits all)");
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int64_t> &p = prompts[size_t(b)];
    if (p.empty())
      return makeError("prompt ", b, " is empty");
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] < 0 || p[i] >= vocab)
        return makeError("prompt ", b, ": id ", p[i], " at position ", i,
                         " is outside the vocabulary [0, ", vocab, ")");
    int64_t need = int64_t(p.size()) + n;
    if (need > ex.capacity())
      return makeError("sequence ", b, " needs ", need, " cache positions (",
                       p.size(), " prompt + ", n,
                       " generated ids) but the context length (KV capacity) "
                       "is ",
                       ex.capacity());
  }
  return Status::success();
}

/// With several ranks, before any other collective of a generation: every
/// rank learns whether every rank accepted it (checkRequest's `mine`) and
/// was asked for what rank 0 was (the prompts, the number of ids and when
/// to stop, which decide every later call and round; not the sampling
/// values, since rank 0 chooses), so that either all go on or all fail
/// here. One broadcast of a hash, one all-reduce of the refusals.
Status agreeOnRequest(Communicator &comm,
                      const std::vector<std::vector<int64_t>> &prompts,
                      const GenerateOptions &options,
                      const std::vector<int64_t> &eos, const Status &mine) {
  uint64_t hash = 0xcbf29ce484222325ull; // FNV-1a over 64-bit words.
  auto mix = [&](uint64_t word) {
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (word >> (8 * byte)) & 0xff;
      hash *= 0x100000001b3ull;
    }
  };
  mix(prompts.size());
  for (const std::vector<int64_t> &p : prompts) {
    mix(p.size());
    for (int64_t id : p)
      mix(uint64_t(id));
  }
  mix(uint64_t(options.maxNewTokens));
  mix(options.stopOnEos ? 1 : 0);
  mix(eos.size());
  for (int64_t id : eos)
    mix(uint64_t(id));
  uint64_t rootHash = hash;
  Status sent = comm.broadcastBytes(&rootHash, sizeof rootHash, /*root=*/0);
  if (!sent.ok())
    return makeError("agreeing on the generation with the other ranks: ",
                     sent.message());
  const bool same = rootHash == hash;
  float refusals = mine.ok() && same ? 0.0f : 1.0f;
  Status summed = comm.allReduceSumF32(&refusals, 1);
  if (!summed.ok())
    return makeError("agreeing on the generation with the other ranks: ",
                     summed.message());
  if (!mine.ok())
    return mine;
  if (!same)
    return makeError("rank 0 was asked for another generation (the prompts, "
                     "the number of ids to generate or when to stop differ): "
                     "every rank must generate from the same prompts and "
                     "options");
  if (refusals != 0)
    return makeError("another rank refused this generation (its error says "
                     "why)");
  return Status::success();
}

/// One generation run's bookkeeping over the executor. Its io goes through
/// Executor::writeBuffer and readBuffer, which work on every device.
struct Runner {
  Executor &ex;
  const GenerateOptions &options;
  GenerationResult &result;
  std::vector<int64_t> cacheLen;
  /// Row r's logits of its most recent position at [r vocab, (r + 1)
  /// vocab): one matrix, so that a call whose rows all take their logits
  /// reads them into place in one copy.
  std::vector<float> last;
  /// The call's ids and cache lengths, and (one position per row, when
  /// some row does not take them) its logits.
  std::vector<int32_t> ids;
  std::vector<int64_t> lens;
  std::vector<float> logits;
  /// Whether calls read the greedy ids of entry points that compute them
  /// instead of their logits (greedy, nothing recorded); then row r's
  /// latest id, from its latest call, is lastId[r] when fromIds[r].
  bool readIds = false;
  std::vector<int32_t> lastId, callIds;
  std::vector<bool> fromIds;
  /// Row r's logits when its latest id came back as -1 (read then, for
  /// the message: a later call may overwrite the buffer); else empty.
  std::vector<std::vector<float>> refusedLogits;
  /// False on a rank that takes rank 0's ids and records no logits: its
  /// calls read neither logits nor ids back.
  bool readsOutputs = true;

  float *lastOf(int64_t row) {
    return last.data() + uint64_t(row) * uint64_t(ex.vocab());
  }

  /// Runs `entry` on rows [first, first + rows) with `seq` tokens each:
  /// tokens(r, s) gives row first + r's s-th token; `feeds(r)` says whether
  /// the row really consumes them (its cache length advances and its logits
  /// are kept).
  template <class Tokens, class Feeds>
  Status call(const ModelEntry &entry, int64_t first, int64_t rows, int64_t seq,
              Tokens tokens, Feeds feeds) {
    const uint64_t vocab = uint64_t(ex.vocab());
    ids.resize(size_t(rows * seq));
    lens.resize(size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {
      lens[size_t(r)] = cacheLen[size_t(first + r)];
      for (int64_t s = 0; s < seq; ++s)
        ids[size_t(r * seq + s)] = static_cast<int32_t>(tokens(r, s));
    }
    JAMBA_CKPT_RETURN_IF_ERROR(
        ex.writeBuffer(entry.ids, ids.data(), ids.size() * sizeof(int32_t)));
    JAMBA_CKPT_RETURN_IF_ERROR(ex.writeBuffer(entry.cacheLen, lens.data(),
                                              lens.size() * sizeof(int64_t)));
    CallDims dims;
    dims.firstRow = first;
    dims.batch = rows;
    dims.seq = seq;
    JAMBA_CKPT_RETURN_IF_ERROR(ex.run(entry.name, dims));
    if (!readsOutputs) {
      for (int64_t r = 0; r < rows; ++r)
        if (feeds(r))
          cacheLen[size_t(first + r)] += seq;
      return Status::success();
    }
    if (readIds && entry.greedyIds)
      return readGreedyIds(entry, first, rows, seq, feeds);
    // Positions per row in the logits: seq, or 1 (the last) when the entry
    // point keeps only the last position's. Only what is used is read: with
    // one position per row (decode) all rows at once (into place when every
    // row takes them, else staged), else each fed row's positions
    // (recorded) or its last one.
    const uint64_t positions = entry.lastLogitsOnly ? 1 : uint64_t(seq);
    const uint64_t rowFloats = positions * vocab;
    bool allFed = true;
    for (int64_t r = 0; r < rows; ++r)
      allFed = allFed && feeds(r);
    if (positions == 1) {
      float *dst = lastOf(first);
      if (!allFed) {
        logits.resize(size_t(uint64_t(rows) * vocab));
        dst = logits.data();
      }
      JAMBA_CKPT_RETURN_IF_ERROR(ex.readBuffer(
          entry.logits, dst, uint64_t(rows) * vocab * sizeof(float)));
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (!feeds(r))
        continue;
      size_t row = size_t(first + r);
      cacheLen[row] += seq;
      float *lastRow = lastOf(first + r);
      if (positions == 1) {
        if (!allFed)
          std::copy_n(logits.begin() + ptrdiff_t(uint64_t(r) * vocab),
                      size_t(vocab), lastRow);
      } else if (options.recordLogits) {
        std::vector<float> &out = result.sequences[row].logits;
        size_t at = out.size();
        out.resize(at + size_t(rowFloats));
        JAMBA_CKPT_RETURN_IF_ERROR(ex.readBuffer(
            entry.logits, out.data() + at, rowFloats * sizeof(float),
            uint64_t(r) * rowFloats * sizeof(float)));
        std::copy(out.end() - ptrdiff_t(vocab), out.end(), lastRow);
      } else {
        JAMBA_CKPT_RETURN_IF_ERROR(
            ex.readBuffer(entry.logits, lastRow, vocab * sizeof(float),
                          (uint64_t(r) * rowFloats + (positions - 1) * vocab) *
                              sizeof(float)));
      }
      if (options.recordLogits) {
        SequenceOutput &out = result.sequences[row];
        if (positions == 1)
          out.logits.insert(out.logits.end(), lastRow, lastRow + vocab);
        out.rows += int64_t(positions);
      }
      fromIds[row] = false;
    }
    return Status::success();
  }

  /// After a call of an entry point with greedy ids: each fed row's id of
  /// its last position, one copy of rows x positions ids for the call.
  template <class Feeds>
  Status readGreedyIds(const ModelEntry &entry, int64_t first, int64_t rows,
                       int64_t seq, Feeds feeds) {
    const uint64_t positions = entry.lastLogitsOnly ? 1 : uint64_t(seq);
    ++result.greedyIdCalls;
    callIds.resize(size_t(uint64_t(rows) * positions));
    JAMBA_CKPT_RETURN_IF_ERROR(ex.readBuffer(*entry.greedyIds, callIds.data(),
                                             callIds.size() * sizeof(int32_t)));
    const uint64_t vocab = uint64_t(ex.vocab());
    for (int64_t r = 0; r < rows; ++r) {
      if (!feeds(r))
        continue;
      size_t row = size_t(first + r);
      cacheLen[row] += seq;
      const uint64_t at = uint64_t(r) * positions + positions - 1;
      lastId[row] = callIds[size_t(at)];
      fromIds[row] = true;
      std::vector<float> &refused = refusedLogits[row];
      refused.clear();
      // Not an error yet: the last call's ids are never chosen.
      if (lastId[row] < 0) {
        refused.resize(size_t(vocab));
        JAMBA_CKPT_RETURN_IF_ERROR(ex.readBuffer(entry.logits, refused.data(),
                                                 vocab * sizeof(float),
                                                 at * vocab * sizeof(float)));
      }
    }
    return Status::success();
  }
};

/// Keeps host memory page-locked for the executor's copies while it lives
/// (Executor::pinHostMemory; nothing on the CPU).
class PinnedHost {
public:
  PinnedHost(Executor &ex, void *p, uint64_t bytes)
      : ex(ex), p(p && ex.pinHostMemory(p, bytes) ? p : nullptr) {}
  ~PinnedHost() {
    if (p)
      ex.unpinHostMemory(p);
  }
  PinnedHost(const PinnedHost &) = delete;
  PinnedHost &operator=(const PinnedHost &) = delete;

private:
  Executor &ex;
  void *p;
};

} // namespace

StatusOr<GenerationResult>
rt::generate(Executor &ex, const std::vector<std::vector<int64_t>> &prompts,
             const GenerateOptions &options) {
  const int64_t batch = static_cast<int64_t>(prompts.size());
  const int64_t vocab = ex.vocab();
  const int64_t n = options.maxNewTokens;
  std::vector<int64_t> eos = options.eosIds;
  if (eos.empty())
    eos = ex.manifest().config.eosTokenIds;
  // With several ranks, rank 0 chooses every id and broadcasts them
  // (chooseRound below): the others feed what it chose, so that all stay
  // in step even where their logits differ from rank 0's in the last bit.
  // A rank that does not choose reads nothing back unless it records.
  Communicator *comm = ex.communicator();
  const bool ranked = comm && comm->size() > 1;
  const bool chooses = !ranked || comm->rank() == 0;
  Status request = checkRequest(ex, prompts, options);
  if (ranked)
    request = agreeOnRequest(*comm, prompts, options, eos, request);
  JAMBA_CKPT_RETURN_IF_ERROR(request);

  GenerationResult result;
  result.vocab = vocab;
  result.sequences.resize(size_t(batch));
  const bool readsOutputs = chooses || options.recordLogits;
  // Greedy generation that records nothing takes the ids the entry points
  // compute where they make the logits (jamba-compile --greedy-ids): 4
  // bytes per sequence and step instead of a vocabulary's logits.
  const bool readIds = options.sampling.isGreedy() && !options.recordLogits;
  const bool logitsRead =
      readsOutputs &&
      !(readIds && ex.prefillEntry().greedyIds && ex.decodeEntry().greedyIds);
  Runner runner{ex,
                options,
                result,
                std::vector<int64_t>(size_t(batch), 0),
                std::vector<float>(
                    logitsRead ? size_t(uint64_t(batch) * uint64_t(vocab)) : 0),
                {},
                {},
                {},
                readIds,
                std::vector<int32_t>(size_t(batch), -1),
                {},
                std::vector<bool>(size_t(batch), false),
                std::vector<std::vector<float>>(size_t(batch)),
                readsOutputs};
  // Each decode step that reads logits copies its rows' logits into
  // `last`: on CUDA directly, page-locked (a copy into pageable memory goes
  // through the driver's staging buffers and a second copy).
  const bool decodeReadsLogits =
      readsOutputs && !(readIds && ex.decodeEntry().greedyIds);
  PinnedHost pinLast(ex, decodeReadsLogits ? runner.last.data() : nullptr,
                     decodeReadsLogits ? runner.last.size() * sizeof(float)
                                       : 0);
  JAMBA_CKPT_RETURN_IF_ERROR(ex.zeroStates(0, batch));
  auto feedAll = [](int64_t) { return true; };

  // Prefill: the common prefix for all rows together, then each row's rest
  // alone; both in chunks of at most the bound seq.
  Clock::time_point start = Clock::now();
  size_t common = prompts[0].size();
  for (const auto &p : prompts)
    common = std::min(common, p.size());
  const ModelEntry &pre = ex.prefillEntry();
  for (size_t at = 0; at < common;) {
    int64_t seq = std::min<int64_t>(ex.seq(), int64_t(common - at));
    JAMBA_CKPT_RETURN_IF_ERROR(runner.call(
        pre, 0, batch, seq,
        [&](int64_t r, int64_t s) { return prompts[size_t(r)][at + s]; },
        feedAll));
    ++result.prefillCalls;
    at += size_t(seq);
  }
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int64_t> &p = prompts[size_t(b)];
    for (size_t at = common; at < p.size();) {
      int64_t seq = std::min<int64_t>(ex.seq(), int64_t(p.size() - at));
      JAMBA_CKPT_RETURN_IF_ERROR(runner.call(
          pre, b, 1, seq, [&](int64_t, int64_t s) { return p[at + s]; },
          feedAll));
      ++result.prefillCalls;
      at += size_t(seq);
    }
    result.prefillTokens += int64_t(p.size());
  }
  result.prefillSeconds = secondsSince(start);

  // Decode: choose id j from the latest logits, then feed it.
  start = Clock::now();
  std::vector<Rng> rngs;
  for (int64_t b = 0; b < batch; ++b)
    rngs.emplace_back(options.sampling.seed ^
                      (0xd1b54a32d192ed03ull * uint64_t(b + 1)));
  // The id row b takes next, from its latest logits (or greedy id).
  auto pick = [&](int64_t b) -> StatusOr<int64_t> {
    StatusOr<int64_t> id =
        runner.fromIds[size_t(b)]
            ? greedyIdOf(runner.lastId[size_t(b)],
                         runner.refusedLogits[size_t(b)], vocab)
            : sampleNext(runner.lastOf(b), vocab, options.sampling,
                         rngs[size_t(b)]);
    if (!id.ok())
      return makeError("sequence ", b, ", generated id ",
                       result.sequences[size_t(b)].ids.size(), ": ",
                       id.status().message());
    return id;
  };
  // Rows `rows` (increasing) each take their next id. With several ranks
  // every rank calls this at the same points with the same rows; rank 0
  // picks and broadcasts `message`: [0] the row whose pick failed there
  // (-1: none), [1 + b] row b's id (-1: b takes none this round).
  std::vector<int64_t> message;
  auto chooseRound = [&](const std::vector<int64_t> &rows) -> Status {
    message.assign(size_t(batch) + 1, -1);
    Status failed = Status::success();
    if (chooses)
      for (int64_t b : rows) {
        StatusOr<int64_t> id = pick(b);
        if (!id.ok()) {
          failed = id.status();
          message[0] = b;
          break;
        }
        message[size_t(b) + 1] = *id;
      }
    if (ranked) {
      Status sent = comm->broadcastBytes(
          message.data(), message.size() * sizeof(int64_t), /*root=*/0);
      if (!sent.ok())
        return makeError("broadcasting rank 0's next ids: ", sent.message());
    }
    if (!failed.ok())
      return failed;
    if (message[0] >= 0 && message[0] < batch)
      return makeError("sequence ", message[0], ", generated id ",
                       result.sequences[size_t(message[0])].ids.size(),
                       ": rank 0 could not choose it (rank 0's error says "
                       "why)");
    if (message[0] != -1)
      return makeError("rank 0 sent a failed sequence ", message[0],
                       " outside the batch of ", batch);
    size_t next = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const bool wanted = next < rows.size() && rows[next] == b;
      next += wanted;
      const int64_t id = message[size_t(b) + 1];
      if (wanted != (id >= 0) || id < -1)
        return makeError("the ranks disagree on the sequences still "
                         "generating: rank 0 sent ",
                         id, " for sequence ", b, ", which this rank ",
                         wanted ? "continues" : "does not continue",
                         " (every rank must generate from the same prompts "
                         "and options)");
      if (id >= vocab)
        return makeError("sequence ", b, ": rank 0 sent id ", id,
                         ", outside the vocabulary [0, ", vocab, ")");
    }
    for (int64_t b : rows) {
      SequenceOutput &out = result.sequences[size_t(b)];
      const int64_t id = message[size_t(b) + 1];
      out.ids.push_back(id);
      if (options.stopOnEos &&
          std::find(eos.begin(), eos.end(), id) != eos.end())
        out.stoppedOnEos = true;
      if (options.onId)
        options.onId(b, id);
    }
    return Status::success();
  };
  if (n > 0) {
    std::vector<int64_t> all(static_cast<size_t>(batch));
    std::iota(all.begin(), all.end(), int64_t(0));
    JAMBA_CKPT_RETURN_IF_ERROR(chooseRound(all));
  }
  const ModelEntry &dec = ex.decodeEntry();
  std::vector<int64_t> rows;
  for (int64_t j = 0; j < n; ++j) {
    // Rows holding an id j to feed.
    auto active = [&](int64_t b) {
      return int64_t(result.sequences[size_t(b)].ids.size()) == j + 1;
    };
    int64_t lo = -1, hi = -1;
    for (int64_t b = 0; b < batch; ++b)
      if (active(b)) {
        if (lo < 0)
          lo = b;
        hi = b;
      }
    if (lo < 0)
      break;
    JAMBA_CKPT_RETURN_IF_ERROR(runner.call(
        dec, lo, hi - lo + 1, 1,
        [&](int64_t r, int64_t) {
          const std::vector<int64_t> &ids =
              result.sequences[size_t(lo + r)].ids;
          return ids.empty() ? prompts[size_t(lo + r)].back() : ids.back();
        },
        [&](int64_t r) { return active(lo + r); }));
    ++result.decodeCalls;
    if (j == 0)
      result.firstDecodeSeconds = secondsSince(start);
    rows.clear();
    for (int64_t b = lo; b <= hi; ++b) {
      if (!active(b))
        continue;
      ++result.decodeTokens;
      result.firstDecodeTokens += j == 0;
      const SequenceOutput &out = result.sequences[size_t(b)];
      if (int64_t(out.ids.size()) < n && !out.stoppedOnEos)
        rows.push_back(b);
    }
    JAMBA_CKPT_RETURN_IF_ERROR(chooseRound(rows));
  }
  result.decodeSeconds = secondsSince(start);
  if (!options.recordLogits)
    for (SequenceOutput &out : result.sequences)
      out.rows = 0;
  return result;
}
