#ifndef MIRROR_AGENT_HEAP_ARENAS_H
#define MIRROR_AGENT_HEAP_ARENAS_H

/* The cap on glibc heap arenas set when the process started: 2, or 0 when MALLOC_ARENA_MAX
 * was set in the environment (glibc then applies that one). */
int mirror_agent_heap_arena_cap(void);

/* malloc_trim(0): hands the heap's free pages back to the kernel (malloc.h is not in Swift's
 * Glibc module). */
void mirror_agent_trim_heap(void);

#endif
