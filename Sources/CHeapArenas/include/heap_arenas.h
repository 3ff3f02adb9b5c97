#ifndef MIRROR_AGENT_HEAP_ARENAS_H
#define MIRROR_AGENT_HEAP_ARENAS_H

/* The cap on glibc heap arenas set when the process started: 2, or 0 when MALLOC_ARENA_MAX
 * was set in the environment (glibc then applies that one). */
int mirror_agent_heap_arena_cap(void);

#endif
