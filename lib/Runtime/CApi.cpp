//===- CApi.cpp - The runtime's C API -------------------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Generate.h"
#include "jamba/Runtime/jamba_runtime.h"

#include <memory>
#include <string>

using namespace jamba;
using namespace jamba::rt;

struct jamba_artifact {
  std::shared_ptr<Artifact> artifact;
};

struct jamba_session {
  std::shared_ptr<Artifact> artifact; ///< Keeps the artifact alive.
  std::unique_ptr<Executor> executor;
};

namespace {

thread_local std::string lastError;

jamba_status fail(jamba_status code, std::string message) {
  lastError = std::move(message);
  return code;
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
  *out = new jamba_artifact{std::shared_ptr<Artifact>(std::move(*opened))};
  lastError.clear();
  return JAMBA_OK;
}

void jamba_artifact_free(jamba_artifact *artifact) { delete artifact; }

int64_t jamba_artifact_vocab_size(const jamba_artifact *artifact) {
  return artifact ? artifact->artifact->manifest().config.vocabSize : -1;
}

jamba_status jamba_session_create(const jamba_artifact *artifact, int64_t batch,
                                  int64_t context, jamba_session **out) {
  if (!artifact || !out)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_session_create: null artifact or output pointer");
  *out = nullptr;
  if (batch < 1 || context < 0)
    return fail(JAMBA_INVALID_ARGUMENT,
                "jamba_session_create: batch must be >= 1 and context >= 0");
  // The session runs on the kind of device the artifact was compiled for
  // (CUDA device 0 for a CUDA artifact).
  SessionOptions options;
  options.batch = batch;
  options.contextLength = context;
  options.device =
      artifact->artifact->manifest().target.kind == TargetDesc::Kind::Cuda
          ? Device::Cuda
          : Device::Cpu;
  StatusOr<std::unique_ptr<Executor>> ex =
      Executor::create(*artifact->artifact, options);
  if (!ex.ok())
    return fail(JAMBA_ERROR, ex.status().message());
  *out = new jamba_session{artifact->artifact, std::move(*ex)};
  lastError.clear();
  return JAMBA_OK;
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
