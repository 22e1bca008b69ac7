/* What the fuzz harnesses share (tests/fuzz/fuzz_NAME.c). Each harness
 * defines LLVMFuzzerInitialize and LLVMFuzzerTestOneInput; it is linked
 * either with libFuzzer (configure --enable-fuzzing) or with replay.c,
 * which feeds it every file of its seed corpus and regressions under
 * make check. A harness reports a broken promise of the library (a
 * round trip that does not read back, a failed load that changed the
 * model) through fuzz_fail, which aborts, so libFuzzer keeps the input
 * as a crash and the replay test fails. */
#ifndef PB_FUZZ_COMMON_H
#define PB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "prunebench/data.h"
#include "prunebench/error.h"

#ifndef PB_SRCDIR
#define PB_SRCDIR "."
/* Fails unless every label of a loaded set is below 10 and its first
 * `pixels` values are in [0, 1] (the data loaders' promise, after the
 * harness has checked the set's shape). */
void fuzz_check_samples(const pb_dataset *d, size_t pixels);

#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Once per process: one OpenMP thread (fuzzing wants one deterministic
 * thread; the machine runs two fuzzers at once) and a private scratch
 * folder, removed at exit. */
void fuzz_setup(void);

/* A malloc-ed, NUL-terminated copy of the input (text loaders), or NULL
 * when out of memory. */
char *fuzz_text(const uint8_t *data, size_t size);

/* Writes bytes as the whole contents of file `slot` (0..7) and returns
 * its path, valid until the next call for that slot. The files live in
 * memory (memfd, named /proc/self/fd/N) so the loaders read them as
 * they read any file, without touching the disk. */
const char *fuzz_file(int slot, const void *data, size_t size);

/* The private scratch folder on disk (under /dev/shm when it exists),
 * for writers that need a real folder (atomic renames). */
const char *fuzz_dir(void);

/* The small fixed model the checkpoint harness loads into (conv with
 * bias, BN, max pool, linear), and its seeds are saved from. */
extern const char fuzz_checkpoint_model[];

/* Prints "fuzz: <message>" and aborts. */
void fuzz_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Fails unless an error carries a negative code and a message: every
 * refusal has to say why. */
void fuzz_check_error(int rc, const pb_error *err, const char *what);

/* Fails unless every label of a loaded set is below 10 and its first
 * `pixels` values are in [0, 1] (the data loaders' promise, after the
 * harness has checked the set's shape). */
void fuzz_check_samples(const pb_dataset *d, size_t pixels);

#endif
