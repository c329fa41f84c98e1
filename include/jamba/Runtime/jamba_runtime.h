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

/** 1 if the artifact carries a tokenizer (the checkpoint's tokenizer.json,
 * loaded by jamba_artifact_open), 0 if not, -1 for a null handle. */
int jamba_artifact_has_tokenizer(const jamba_artifact *artifact);
/** Encodes the NUL-terminated UTF-8 `text` with the artifact's tokenizer,
 * the special tokens of its template (the BOS) included. *length gets the
 * number of ids; at most `capacity` are written to `ids` (null when
 * `capacity` is 0: a call with 0 sizes the buffer), and more ids than
 * `capacity` is JAMBA_INVALID_ARGUMENT. Text that is not UTF-8, or that
 * the vocabulary cannot express, is JAMBA_ERROR. */
jamba_status jamba_tokenize(const jamba_artifact *artifact, const char *text,
                            int32_t *ids, int64_t capacity, int64_t *length);
/** Decodes `count` ids to UTF-8 text with the artifact's tokenizer, special
 * tokens left out and an id it lacks shown as U+FFFD. *length gets the
 * text's length in bytes without the NUL; `text` gets the text and a NUL
 * when `capacity` > *length (null when `capacity` is 0: a call with 0
 * sizes the buffer); a smaller non-zero capacity is
 * JAMBA_INVALID_ARGUMENT. */
jamba_status jamba_detokenize(const jamba_artifact *artifact,
                              const int32_t *ids, int64_t count, char *text,
                              int64_t capacity, int64_t *length);

/** A sequence's ids to text as they come (generated ids shown while they
 * are generated, e.g. from jamba_generate_options.on_id), with the
 * artifact's tokenizer, special tokens left out. Each push returns the text
 * that the ids so far certainly begin with and that was not returned
 * before: a run of byte-fallback tokens (a character's bytes) waits for a
 * token that is not one. Finish returns the rest; all the returned pieces
 * together are jamba_detokenize of all the ids. The text a call returns is
 * NUL-terminated, *length (when not null) its bytes without the NUL, and it
 * stays valid until the next call on the stream. The stream keeps the
 * tokenizer: the artifact may be freed first. An artifact without a
 * tokenizer is JAMBA_ERROR; a push or finish after finish is
 * JAMBA_INVALID_ARGUMENT. */
typedef struct jamba_text_stream jamba_text_stream;
jamba_status jamba_text_stream_create(const jamba_artifact *artifact,
                                      jamba_text_stream **out);
jamba_status jamba_text_stream_push(jamba_text_stream *stream, int32_t id,
                                    const char **text, int64_t *length);
jamba_status jamba_text_stream_finish(jamba_text_stream *stream,
                                      const char **text, int64_t *length);
void jamba_text_stream_free(jamba_text_stream *stream);

/** Binds `artifact` for `batch` sequences at once and `context` tokens per
 * sequence (0: min(4096, the artifact's largest)); loads the kernels and
 * allocates every buffer. Values above the artifact's maxima are refused.
 * The session runs on the device the artifact targets: the CPU, or CUDA
 * device 0 (without a driver or a device that is an error). */
jamba_status jamba_session_create(const jamba_artifact *artifact, int64_t batch,
                                  int64_t context, jamba_session **out);
void jamba_session_free(jamba_session *session);

/** One rank of a sharded run (an artifact compiled with --tensor-parallel /
 * --expert-parallel): which rank this is, and how the ranks sum partial
 * results. */
typedef struct jamba_rank jamba_rank;

/** `count` ranks that are threads of this process (1..1024): out[k] is rank
 * k, for the thread that runs rank k's session (one process driving several
 * GPUs, or several CPU ranks). Their collectives meet in shared memory and
 * give up after JAMBA_COLLECTIVE_TIMEOUT seconds (default 300). `out` holds
 * `count` pointers; free each with jamba_rank_free (a session keeps its
 * rank's communicator: the handle may go before or after the session). */
jamba_status jamba_ranks_create_threads(int64_t count, jamba_rank **out);
/** This process's rank of an MPI job (started by mpirun; initialises MPI
 * unless the application did). Fails in a build without MPI. */
jamba_status jamba_rank_create_mpi(jamba_rank **out);
void jamba_rank_free(jamba_rank *rank);
/** The rank's index and the number of ranks, or -1 for a null handle. */
int64_t jamba_rank_index(const jamba_rank *rank);
int64_t jamba_rank_count(const jamba_rank *rank);

/** As jamba_session_create, as rank `rank` of a sharded artifact (its rank
 * count must equal the artifact's; the session holds on to what it needs of
 * the rank, which may be freed while the session lives). A CUDA artifact
 * runs on device `cuda_device` (-1: the rank's index), and its ranks sum
 * with NCCL. Every rank must create its session and generate
 * the same prompts at the same time: their kernels meet in collectives. */
jamba_status jamba_session_create_rank(const jamba_artifact *artifact,
                                       int64_t batch, int64_t context,
                                       jamba_rank *rank, int cuda_device,
                                       jamba_session **out);
/** Bytes the session's memory plan holds (weights, state, arena, io). */
uint64_t jamba_session_plan_bytes(const jamba_session *session);

typedef struct jamba_generate_options {
  int64_t max_new_tokens; /**< At most this many ids per sequence. */
  double temperature;     /**< 0: greedy. */
  int64_t top_k;          /**< 0: all ids. */
  double top_p;           /**< In (0, 1]; 1: all ids. */
  uint64_t seed;
  int stop_on_eos; /**< Non-zero: stop a sequence at the model's EOS ids. */
  /** Called with `user_data` as each id is chosen (sequence i, id), in
   * order, before jamba_generate returns: text can be shown as it comes.
   * NULL: not called. */
  void (*on_id)(void *user_data, int64_t sequence, int32_t id);
  void *user_data;
} jamba_generate_options;

/** Greedy, 16 ids, stop on EOS, no on_id. */
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
