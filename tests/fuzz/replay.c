/* Replays fuzz inputs (files or directories of them) through the fuzz
 * target without libFuzzer, so any compiler with sanitizers can run the
 * corpus: `fuzz-replay tests/fuzz/corpus`. Prints TAP-free counts. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) {
        fputs("replay: out of memory\n", stderr);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += replay_file(argv[i]);
            n++;
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[i], &names, NULL, alphasort);
        for (int j = 0; j < k; j++) {
            if (names[j]->d_name[0] != '.') {
                char *p = malloc(strlen(argv[i]) + strlen(names[j]->d_name) + 2);
                sprintf(p, "%s/%s", argv[i], names[j]->d_name);
                bad += replay_file(p);
                n++;
                free(p);
            }
            free(names[j]);
        }
        free(names);
    }
    printf("replayed %d inputs, %d unreadable\n", n, bad);
    return bad != 0;
}
