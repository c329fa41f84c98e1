//===- CApi.cpp - The runtime's C API -------------------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/Generate.h"
#include "jamba/Runtime/jamba_runtime.h"

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace jamba;
using namespace jamba::rt;

struct jamba_artifact {
  std::shared_ptr<Artifact> artifact;
  /// The artifact's tokenizer, when it has one (loaded with it; encoding
  /// and decoding are const, so threads may share it). Shared with the
  /// text streams made from it, which may outlive this handle.
  std::shared_ptr<const ckpt::Tokenizer> tokenizer;
};

struct jamba_session {
  std::shared_ptr<Artifact> artifact; ///< Keeps the artifact alive.
  /// Keeps the rank's communicator alive (null for a single rank): a caller
  /// may free the jamba_rank while the session runs. Declared before the
  /// executor, so that it is destroyed after it.
  std::shared_ptr<Communicator> communicator;
  std::unique_ptr<Executor> executor;
};

struct jamba_rank {
  std::shared_ptr<Communicator> communicator;
};

struct jamba_text_stream {
  /// Keeps the tokenizer alive; declared before the stream that uses it.
  std::shared_ptr<const ckpt::Tokenizer> tokenizer;
  ckpt::TextStream stream;
  /// The text the last call returned (its pointer stays valid until the
  /// next call).
  std::string text;
  bool finished;
};

namespace {

thread_local std::string lastError;

jamba_status fail(jamba_status code, std::string message) {
  lastError = std::move(message);
  return code;
}

/// What a text call on an artifact without a tokenizer returns.
jamba_status noTokenizer(const char *call) {
  return fail(JAMBA_ERROR, ckpt::concat(call, ": the artifact has no "
                                              "tokenizer (its checkpoint had "
                                              "no tokenizer.json)"));
}

/// jamba_text_stream_push (`id`) and jamba_text_stream_finish (none): the
/// text the call gives, kept in the stream until its next call.
jamba_status textStreamStep(const char *call, jamba_text_stream *stream,
                            std::optional<int32_t> id, const char **text,
                            int64_t *length) {
  if (!stream || !text)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat(call, ": null stream or text pointer"));
  if (stream->finished)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat(call, ": the stream is finished"));
  ckpt::StatusOr<std::string> piece =
      id ? stream->stream.push(*id) : stream->stream.finish();
  if (!piece.ok())
    return fail(JAMBA_ERROR,
                ckpt::concat(call, ": ", piece.status().message()));
  stream->finished = !id;
  stream->text = std::move(*piece);
  *text = stream->text.c_str();
  if (length)
    *length = int64_t(stream->text.size());
  lastError.clear();
  return JAMBA_OK;
}

} // namespace

extern "C" {

const char *jamba_last_error(void) { return lastError.c_str(); }

jamba_status jamba_artifact_open(const char *dir, jamba_artifact **out) {
  if (!dir || !out)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_artifact_open: null directory or output pointer");
  *out = nullptr;
  StatusOr<std::unique_ptr<Artifact>> opened = Artifact::open(dir);
  if (!opened.ok())
    return fail(JAMBA_ERROR, opened.status().message());
  StatusOr<std::optional<ckpt::Tokenizer>> tokenizer =
      (*opened)->loadTokenizer();
  if (!tokenizer.ok())
    return fail(JAMBA_ERROR, tokenizer.status().message());
  std::shared_ptr<const ckpt::Tokenizer> shared;
  if (*tokenizer)
    shared = std::make_shared<const ckpt::Tokenizer>(std::move(**tokenizer));
  *out = new jamba_artifact{std::shared_ptr<Artifact>(std::move(*opened)),
                            std::move(shared)};
  lastError.clear();
  return JAMBA_OK;
}

void jamba_artifact_free(jamba_artifact *artifact) { delete artifact; }

int64_t jamba_artifact_vocab_size(const jamba_artifact *artifact) {
  return artifact ? artifact->artifact->manifest().config.vocabSize : -1;
}

int jamba_artifact_has_tokenizer(const jamba_artifact *artifact) {
  return artifact ? artifact->tokenizer != nullptr : -1;
}

jamba_status jamba_tokenize(const jamba_artifact *artifact, const char *text,
                            int32_t *ids, int64_t capacity, int64_t *length) {
  if (!artifact || !text || !length || capacity < 0 || (capacity > 0 && !ids))
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_tokenize: null artifact, text or length, a negative "
                "capacity, or null ids with a capacity");
  if (!artifact->tokenizer)
    return noTokenizer("jamba_tokenize");
  ckpt::StatusOr<std::vector<int64_t>> encoded =
      artifact->tokenizer->encode(text);
  if (!encoded.ok())
    return fail(JAMBA_ERROR,
                ckpt::concat("jamba_tokenize: ", encoded.status().message()));
  *length = static_cast<int64_t>(encoded->size());
  if (capacity == 0) {
    lastError.clear();
    return JAMBA_OK; // Sizing.
  }
  if (*length > capacity)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat("jamba_tokenize: ", *length,
                             " ids do not fit a capacity of ", capacity));
  for (size_t i = 0; i < encoded->size(); ++i)
    ids[i] = static_cast<int32_t>((*encoded)[i]);
  lastError.clear();
  return JAMBA_OK;
}

jamba_status jamba_detokenize(const jamba_artifact *artifact,
                              const int32_t *ids, int64_t count, char *text,
                              int64_t capacity, int64_t *length) {
  if (!artifact || !length || count < 0 || (count > 0 && !ids) ||
      capacity < 0 || (capacity > 0 && !text))
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_detokenize: null artifact or length, a negative count "
                "or capacity, or a null buffer with a size");
  if (!artifact->tokenizer)
    return noTokenizer("jamba_detokenize");
  std::vector<int64_t> wide(ids, ids + count);
  ckpt::StatusOr<std::string> decoded = artifact->tokenizer->decode(wide);
  if (!decoded.ok())
    return fail(JAMBA_ERROR,
                ckpt::concat("jamba_detokenize: ", decoded.status().message()));
  *length = static_cast<int64_t>(decoded->size());
  if (capacity == 0) {
    lastError.clear();
    return JAMBA_OK; // Sizing.
  }
  if (*length >= capacity)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat("jamba_detokenize: ", *length,
                             " bytes and a NUL do not fit a capacity of ",
                             capacity));
  std::memcpy(text, decoded->data(), decoded->size());
  text[decoded->size()] = '\0';
  lastError.clear();
  return JAMBA_OK;
}

jamba_status jamba_text_stream_create(const jamba_artifact *artifact,
                                      jamba_text_stream **out) {
  if (!artifact || !out)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_text_stream_create: null artifact or output pointer");
  *out = nullptr;
  if (!artifact->tokenizer)
    return noTokenizer("jamba_text_stream_create");
  *out = new jamba_text_stream{
      artifact->tokenizer, ckpt::TextStream(*artifact->tokenizer), {}, false};
  lastError.clear();
  return JAMBA_OK;
}

jamba_status jamba_text_stream_push(jamba_text_stream *stream, int32_t id,
                                    const char **text, int64_t *length) {
  return textStreamStep("jamba_text_stream_push", stream, id, text, length);
}

jamba_status jamba_text_stream_finish(jamba_text_stream *stream,
                                      const char **text, int64_t *length) {
  return textStreamStep("jamba_text_stream_finish", stream, std::nullopt, text,
                        length);
}

void jamba_text_stream_free(jamba_text_stream *stream) { delete stream; }

} // extern "C"

namespace {

/// Both session constructors: `rank` null is the single-rank session on
/// CUDA device 0.
jamba_status createSession(const char *call, const jamba_artifact *artifact,
                           int64_t batch, int64_t context, jamba_rank *rank,
                           int cudaDevice, jamba_session **out) {
  if (!artifact || !out)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat(call, ": null artifact or output pointer"));
  *out = nullptr;
  if (batch < 1 || context < 0)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat(call, ": batch must be >= 1 and context >= 0"));
  if (cudaDevice < -1)
    return fail(
        JAMBA_INVALID_ARGUMENT,
        ckpt::concat(call, ": cuda_device must be >= -1, got ", cudaDevice));
  // The session runs on the kind of device the artifact was compiled for.
  SessionOptions options;
  options.batch = batch;
  options.contextLength = context;
  options.device =
      artifact->artifact->manifest().target.kind == TargetDesc::Kind::Cuda
          ? Device::Cuda
          : Device::Cpu;
  if (rank) {
    options.communicator = rank->communicator.get();
    options.rank = rank->communicator->rank();
    options.cudaDevice =
        cudaDevice >= 0 ? cudaDevice : int(rank->communicator->rank());
  }
  StatusOr<std::unique_ptr<Executor>> ex =
      Executor::create(*artifact->artifact, options);
  if (!ex.ok())
    return fail(JAMBA_ERROR, ex.status().message());
  *out = new jamba_session{artifact->artifact,
                           rank ? rank->communicator : nullptr, std::move(*ex)};
  lastError.clear();
  return JAMBA_OK;
}

} // namespace

extern "C" {

jamba_status jamba_session_create(const jamba_artifact *artifact, int64_t batch,
                                  int64_t context, jamba_session **out) {
  return createSession("jamba_session_create", artifact, batch, context,
                       nullptr, 0, out);
}

jamba_status jamba_session_create_rank(const jamba_artifact *artifact,
                                       int64_t batch, int64_t context,
                                       jamba_rank *rank, int cuda_device,
                                       jamba_session **out) {
  if (!rank)
    return fail(JAMBA_INVALID_ARGUMENT, "jamba_session_create_rank: null rank");
  return createSession("jamba_session_create_rank", artifact, batch, context,
                       rank, cuda_device, out);
}

jamba_status jamba_ranks_create_threads(int64_t count, jamba_rank **out) {
  if (!out)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_ranks_create_threads: null output array");
  if (count < 1 || count > 1024)
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat("jamba_ranks_create_threads: the count must be "
                             "in [1, 1024], got ",
                             count));
  std::vector<std::unique_ptr<Communicator>> ranks =
      createThreadCommunicators(count);
  for (int64_t k = 0; k < count; ++k)
    out[k] = new jamba_rank{std::move(ranks[size_t(k)])};
  lastError.clear();
  return JAMBA_OK;
}

jamba_status jamba_rank_create_mpi(jamba_rank **out) {
  if (!out)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_rank_create_mpi: null output pointer");
  *out = nullptr;
  StatusOr<std::unique_ptr<Communicator>> created = createMpiCommunicator();
  if (!created.ok())
    return fail(JAMBA_ERROR, created.status().message());
  *out = new jamba_rank{std::move(*created)};
  lastError.clear();
  return JAMBA_OK;
}

void jamba_rank_free(jamba_rank *rank) { delete rank; }

int64_t jamba_rank_index(const jamba_rank *rank) {
  return rank ? rank->communicator->rank() : -1;
}

int64_t jamba_rank_count(const jamba_rank *rank) {
  return rank ? rank->communicator->size() : -1;
}

void jamba_session_free(jamba_session *session) {
  if (!session)
    return;
  session->executor.reset(); // Before the artifact it refers to.
  delete session;
}

uint64_t jamba_session_plan_bytes(const jamba_session *session) {
  return session ? totalPlanBytes(session->executor->plan()) : 0;
}

void jamba_generate_options_init(jamba_generate_options *options) {
  if (!options)
    return;
  options->max_new_tokens = 16;
  options->temperature = 0.0;
  options->top_k = 0;
  options->top_p = 1.0;
  options->seed = 0;
  options->stop_on_eos = 1;
  options->on_id = nullptr;
  options->user_data = nullptr;
}

jamba_status jamba_generate(jamba_session *session,
                            const jamba_generate_options *options,
                            int64_t num_sequences,
                            const int32_t *const *prompt_ids,
                            const int64_t *prompt_lengths, int32_t *out_ids,
                            int64_t *out_lengths) {
  if (!session || !options || !prompt_ids || !prompt_lengths || !out_ids ||
      !out_lengths)
    return fail(JAMBA_INVALID_ARGUMENT, "jamba_generate: a null argument");
  if (num_sequences < 1 || num_sequences > session->executor->batch())
    return fail(JAMBA_INVALID_ARGUMENT,
                ckpt::concat("jamba_generate: ", num_sequences,
                             " sequences; the session runs 1..",
                             session->executor->batch()));
  if (options->max_new_tokens < 0)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_generate: max_new_tokens must be >= 0");
  std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(num_sequences));
  for (int64_t i = 0; i < num_sequences; ++i) {
    if (prompt_lengths[i] < 1 || !prompt_ids[i])
      return fail(
          JAMBA_INVALID_ARGUMENT,
          ckpt::concat("jamba_generate: prompt ", i, " is empty or null"));
    if (prompt_lengths[i] > session->executor->capacity())
      return fail(JAMBA_INVALID_ARGUMENT,
                  ckpt::concat("jamba_generate: prompt ", i, " has ",
                               prompt_lengths[i],
                               " ids, more than the context length ",
                               session->executor->capacity()));
    prompts[size_t(i)].assign(prompt_ids[i], prompt_ids[i] + prompt_lengths[i]);
  }
  GenerateOptions g;
  g.maxNewTokens = options->max_new_tokens;
  g.sampling.temperature = options->temperature;
  g.sampling.topK = options->top_k;
  g.sampling.topP = options->top_p;
  g.sampling.seed = options->seed;
  g.stopOnEos = options->stop_on_eos != 0;
  if (options->on_id)
    g.onId = [onId = options->on_id,
              data = options->user_data](int64_t sequence, int64_t id) {
      onId(data, sequence, int32_t(id));
    };
  Status valid = validateSampling(g.sampling);
  if (!valid.ok())
    return fail(JAMBA_INVALID_ARGUMENT, "jamba_generate: " + valid.message());
  StatusOr<GenerationResult> result =
      rt::generate(*session->executor, prompts, g);
  if (!result.ok())
    return fail(JAMBA_ERROR, result.status().message());
  for (int64_t i = 0; i < num_sequences; ++i) {
    const std::vector<int64_t> &ids = result->sequences[size_t(i)].ids;
    out_lengths[i] = int64_t(ids.size());
    for (size_t j = 0; j < ids.size(); ++j)
      out_ids[i * options->max_new_tokens + int64_t(j)] = int32_t(ids[j]);
  }
  lastError.clear();
  return JAMBA_OK;
}

} // extern "C"
