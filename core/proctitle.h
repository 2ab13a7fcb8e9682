/* proctitle.h - the title ps shows for each process ("ringmaster: gateway 0"). */
#ifndef RM_PROCTITLE_H
#define RM_PROCTITLE_H

/* Call rm_proctitle_init(argc, argv) once in main before anything reads
 * argv (it moves argv's strings out of the way), then rm_proctitle_set()
 * in each process. */
void rm_proctitle_init(int argc, char **argv);
void rm_proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
