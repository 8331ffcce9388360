/* Lexical path helpers: spec paths are taken from the directory of the file
 * that names them, and printed relative to wherever the text will be read. */
#ifndef LWLC_PATH_H
#define LWLC_PATH_H

/* dir/rel normalised (`.` and `x/..` removed), or rel itself when absolute. */
char *path_join(const char *dir, const char *rel);
/* Removes `.` components and `x/..` pairs without touching the file system. */
char *path_normalize(const char *p);
/* `target` relative to directory `from` (both relative to the working
 * directory or absolute). */
char *path_relative(const char *target, const char *from);
/* The file name without directory and extension: specs/crop.lwl → crop. */
char *path_stem(const char *p);

#endif
