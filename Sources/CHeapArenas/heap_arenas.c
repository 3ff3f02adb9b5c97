#include <malloc.h>
#include <stdlib.h>
#include "heap_arenas.h"

/* Runs before main, so before any thread exists: glibc reads the arena cap once, when a
 * second thread first allocates, and ignores later changes. By default each thread that
 * allocates under contention may get an arena of its own (up to 8 per core); a re-read
 * 100k-service state file then leaves freed buffers scattered over several arenas, where
 * malloc_trim cannot return them (measured: RSS crept from 85 to 120-185 MiB over ten edits;
 * 75 MiB with two arenas). The agent's hot paths hardly allocate, so the lock is not
 * contended. */
static int applied_cap = 0;

__attribute__((constructor))
static void mirror_agent_cap_heap_arenas(void) {
    if (getenv("MALLOC_ARENA_MAX") != NULL) return;
    if (mallopt(M_ARENA_MAX, 2) == 1) applied_cap = 2;
}

int mirror_agent_heap_arena_cap(void) { return applied_cap; }

void mirror_agent_trim_heap(void) { malloc_trim(0); }
