/*===- jamba_runtime.h - The jamba-mlir runtime's C API ------------*- C -*-===*
 *
 * Part of the jamba-mlir project.
 *
 *===----------------------------------------------------------------------===*
 *
 * A small C interface for embedding the runtime: open a compiled artifact,
 * bind it to a batch size and context length (a session), generate ids.
 * docs/Runtime.md ("The C API") describes it. Handles are opaque; every
 * function that can fail returns a jamba_status, and on failure
 * jamba_last_error() gives a one-line message (per thread, valid until the
 * thread's next call into this API). Nothing here throws or aborts on bad
 * input; null pointers are reported as JAMBA_INVALID_ARGUMENT.
 *
 *===----------------------------------------------------------------------===*/

#ifndef JAMBA_RUNTIME_JAMBA_RUNTIME_H
#define JAMBA_RUNTIME_JAMBA_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum jamba_status {
  JAMBA_OK = 0,
  /** A null pointer, a negative count or a bad option value. */
  JAMBA_INVALID_ARGUMENT = 1,
  /** The artifact, the session or the run failed (see jamba_last_error). */
  JAMBA_ERROR = 2
} jamba_status;

/** A validated, loaded artifact. */
typedef struct jamba_artifact jamba_artifact;
/** An artifact bound to a batch size and a context length. */
typedef struct jamba_session jamba_session;

/** The message of this thread's last failure ("" if none). */
const char *jamba_last_error(void);

/** Opens and validates the artifact directory `dir` (every check of
 * docs/ArtifactFormat.md). On success *out owns it. */
jamba_status jamba_artifact_open(const char *dir, jamba_artifact **out);
/** Frees an artifact; null is allowed. Sessions keep what they need. */
void jamba_artifact_free(jamba_artifact *artifact);
/** The model's vocabulary size, or -1 for a null handle. */
int64_t jamba_artifact_vocab_size(const jamba_artifact *artifact);

/** Binds `artifact` for `batch` sequences at once and `context` tokens per
 * sequence (0: min(4096, the artifact's largest)); loads the kernels and
 * allocates every buffer. Values above the artifact's maxima are refused.
 * The session runs on the device the artifact targets: the CPU, or CUDA
 * device 0 (without a driver or a device that is an error). */
jamba_status jamba_session_create(const jamba_artifact *artifact, int64_t batch,
                                  int64_t context, jamba_session **out);
void jamba_session_free(jamba_session *session);
/** Bytes the session's memory plan holds (weights, state, arena, io). */
uint64_t jamba_session_plan_bytes(const jamba_session *session);

typedef struct jamba_generate_options {
  int64_t max_new_tokens; /**< At most this many ids per sequence. */
  double temperature;     /**< 0: greedy. */
  int64_t top_k;          /**< 0: all ids. */
  double top_p;           /**< In (0, 1]; 1: all ids. */
  uint64_t seed;
  int stop_on_eos; /**< Non-zero: stop a sequence at the model's EOS ids. */
} jamba_generate_options;

/** Greedy, 16 ids, stop on EOS. */
void jamba_generate_options_init(jamba_generate_options *options);

/** Generates for `num_sequences` prompts (at most the session's batch):
 * prompt i is prompt_ids[i][0 .. prompt_lengths[i]). Sequence i's ids go to
 * out_ids[i * max_new_tokens ...], their count to out_lengths[i]. */
jamba_status jamba_generate(jamba_session *session,
                            const jamba_generate_options *options,
                            int64_t num_sequences,
                            const int32_t *const *prompt_ids,
                            const int64_t *prompt_lengths, int32_t *out_ids,
                            int64_t *out_lengths);

#ifdef __cplusplus
}
#endif

#endif /* JAMBA_RUNTIME_JAMBA_RUNTIME_H */
