/*
 * Plain-copy baseline for scripts/bench-engine: copies System V segments to files and back the way asmt
 * 2.2.1 does its plain I/O (from the facts in shared/asmt-format.md §4 and §6, no asmt code), so that the
 * benchmark can compare asmtd with an asmt-like copy measured in the same run on the same disk.
 *
 *   bench-baseline backup DIR KEY...   segment KEY -> DIR/%08x.dat for each key (the segments must exist)
 *   bench-baseline restore DIR KEY...  DIR/%08x.dat -> new segment KEY, then removes the segments it created
 *   bench-baseline remove KEY...       removes those of the keys' segments that exist and are unattached
 *
 * Setup (as asmt): every file is opened / every segment created and attached first; then min(files, online
 * CPUs) threads each take the next file from a shared counter and copy that whole file:
 *   backup:  posix_fallocate(size), pwrite the whole attached segment (looping on short writes), fsync,
 *            fchown/fchmod to the segment's owner and mode, close.  Files are open(O_CREAT|O_EXCL|O_RDWR, 0600).
 *   restore: shmget(IPC_CREAT|IPC_EXCL, file size, file mode), attach read-write, pread the whole file into it
 *            (looping on short reads), detach.
 * Prints "seconds S" (wall time from start to the last thread's end, before the restored segments are removed)
 * on stdout. Keys must be Aerospike keys of instance 15 (the benchmarks' instance). On failure or SIGINT/SIGTERM
 * it removes every file (backup) or segment (restore) it created and exits non-zero.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INSTANCE 15
#define MAX_FILES 8192
#define MAX_IO 0x40000000L /* 1 GiB per call; Linux caps one call near 2 GiB anyway */

struct item {
    key_t key;
    char path[4096];
    int fd;
    int shmid;
    void *addr;
    size_t size;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

static struct item items[MAX_FILES];
static int count;
static int backup;
static atomic_int next_item;
static atomic_int failed;
/* What this process created, for the cleanup paths (read by the signal handler). */
static volatile sig_atomic_t created_files, created_segments;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const struct item *it, const char *what, int err) {
    fprintf(stderr, "bench-baseline: %s 0x%08x: %s\n", what, (unsigned)it->key, strerror(err));
    atomic_store(&failed, 1);
}

/* Async-signal-safe: unlink and shmctl are plain system calls. */
static void remove_created(void) {
    for (int i = 0; i < created_files; i++)
        unlink(items[i].path);
    for (int i = 0; i < created_segments; i++)
        shmctl(items[i].shmid, IPC_RMID, NULL); /* destroyed at the last detach (at exit at the latest) */
}

static void on_signal(int sig) {
    remove_created();
    _exit(128 + sig);
}

static int parse_key(const char *text, key_t *key) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 16);
    if (errno || *end || v > 0xffffffffUL)
        return -1;
    unsigned type = (unsigned)(v >> 24), instance = (unsigned)(v >> 20) & 0xf, nsid = (unsigned)(v >> 12) & 0xff;
    if ((type != 0xae && type != 0xa2 && type != 0xad) || instance != INSTANCE || nsid < 1 || nsid > 32)
        return -1;
    *key = (key_t)(uint32_t)v;
    return 0;
}

static void copy_backup(struct item *it) {
    int r = posix_fallocate(it->fd, 0, (off_t)it->size);
    if (r != 0 && r != EOPNOTSUPP && r != EINVAL) {
        fail(it, "posix_fallocate", r);
        return;
    }
    size_t done = 0;
    while (done < it->size) {
        size_t n = it->size - done < MAX_IO ? it->size - done : MAX_IO;
        ssize_t w = pwrite(it->fd, (char *)it->addr + done, n, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fail(it, "pwrite", w < 0 ? errno : EIO);
            return;
        }
        done += (size_t)w;
    }
    if (fsync(it->fd) != 0) {
        fail(it, "fsync", errno);
        return;
    }
    if (fchown(it->fd, it->uid, it->gid) != 0 || fchmod(it->fd, it->mode & 0777) != 0) {
        fail(it, "fchown/fchmod", errno);
        return;
    }
    if (close(it->fd) != 0)
        fail(it, "close", errno);
    it->fd = -1;
}

static void copy_restore(struct item *it) {
    size_t done = 0;
    while (done < it->size) {
        size_t n = it->size - done < MAX_IO ? it->size - done : MAX_IO;
        ssize_t r = pread(it->fd, (char *)it->addr + done, n, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fail(it, "pread", r < 0 ? errno : EIO);
            return;
        }
        done += (size_t)r;
    }
    struct shmid_ds ds;
    if (shmctl(it->shmid, IPC_STAT, &ds) == 0) {
        ds.shm_perm.uid = it->uid;
        ds.shm_perm.gid = it->gid;
        ds.shm_perm.mode = it->mode & 0777;
        if (shmctl(it->shmid, IPC_SET, &ds) != 0)
            fail(it, "shmctl IPC_SET", errno);
    }
    if (shmdt(it->addr) != 0)
        fail(it, "shmdt", errno);
    it->addr = NULL;
    close(it->fd);
    it->fd = -1;
}

static void *worker(void *unused) {
    (void)unused;
    while (!atomic_load(&failed)) {
        int i = atomic_fetch_add(&next_item, 1);
        if (i >= count)
            break;
        if (backup)
            copy_backup(&items[i]);
        else
            copy_restore(&items[i]);
    }
    return NULL;
}

/* Setup of item i; returns 0 or -1 (message printed). */
static int prepare(struct item *it, const char *dir) {
    struct stat st;
    struct shmid_ds ds;
    snprintf(it->path, sizeof it->path, "%s/%08x.dat", dir, (unsigned)it->key);
    it->fd = -1;
    it->addr = NULL;
    if (backup) {
        if ((it->shmid = shmget(it->key, 0, 0)) < 0 || shmctl(it->shmid, IPC_STAT, &ds) != 0)
            return fail(it, "segment", errno), -1;
        it->size = ds.shm_segsz;
        it->uid = ds.shm_perm.uid;
        it->gid = ds.shm_perm.gid;
        it->mode = ds.shm_perm.mode & 0777;
        if ((it->addr = shmat(it->shmid, NULL, SHM_RDONLY)) == (void *)-1)
            return it->addr = NULL, fail(it, "shmat", errno), -1;
        if ((it->fd = open(it->path, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0)
            return fail(it, it->path, errno), -1;
        created_files++;
    } else {
        if ((it->fd = open(it->path, O_RDONLY)) < 0 || fstat(it->fd, &st) != 0)
            return fail(it, it->path, errno), -1;
        it->size = (size_t)st.st_size;
        it->uid = st.st_uid;
        it->gid = st.st_gid;
        it->mode = st.st_mode & 0777;
        if ((it->shmid = shmget(it->key, it->size, IPC_CREAT | IPC_EXCL | 0600)) < 0)
            return fail(it, "shmget", errno), -1;
        created_segments++;
        if ((it->addr = shmat(it->shmid, NULL, 0)) == (void *)-1)
            return it->addr = NULL, fail(it, "shmat", errno), -1;
    }
    return 0;
}

static int remove_keys(int argc, char **argv) {
    int status = 0;
    for (int i = 0; i < argc; i++) {
        key_t key;
        struct shmid_ds ds;
        if (parse_key(argv[i], &key) != 0) {
            fprintf(stderr, "bench-baseline: not a key of instance %d: %s\n", INSTANCE, argv[i]);
            status = 2;
            continue;
        }
        int id = shmget(key, 0, 0);
        if (id >= 0 && shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0 && shmctl(id, IPC_RMID, NULL) != 0)
            status = 1;
    }
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "remove") == 0)
        return remove_keys(argc - 2, argv + 2);
    if (argc < 4 || (strcmp(argv[1], "backup") != 0 && strcmp(argv[1], "restore") != 0)) {
        fprintf(stderr, "usage: bench-baseline backup|restore DIR KEY... | remove KEY...\n");
        return 2;
    }
    backup = strcmp(argv[1], "backup") == 0;
    const char *dir = argv[2];
    count = argc - 3;
    if (count > MAX_FILES) {
        fprintf(stderr, "bench-baseline: at most %d keys\n", MAX_FILES);
        return 2;
    }
    for (int i = 0; i < count; i++) {
        if (parse_key(argv[i + 3], &items[i].key) != 0) {
            fprintf(stderr, "bench-baseline: not a key of instance %d: %s\n", INSTANCE, argv[i + 3]);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    double start = now();
    for (int i = 0; i < count && !atomic_load(&failed); i++)
        prepare(&items[i], dir);
    if (!atomic_load(&failed)) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int threads = cpus < 1 ? 1 : cpus > count ? count : (int)cpus;
        pthread_t tids[threads];
        int started = 0;
        for (; started < threads; started++) {
            int r = pthread_create(&tids[started], NULL, worker, NULL);
            if (r != 0) {
                fprintf(stderr, "bench-baseline: pthread_create: %s\n", strerror(r));
                atomic_store(&failed, 1);
                break;
            }
        }
        for (int t = 0; t < started; t++)
            pthread_join(tids[t], NULL);
    }
    double elapsed = now() - start;
    int bad = atomic_load(&failed);
    if (!bad)
        printf("seconds %.6f\n", elapsed);
    fflush(stdout);

    /* Leave nothing behind but a successful backup's files. */
    for (int i = 0; i < count; i++) {
        if (items[i].fd >= 0)
            close(items[i].fd);
        if (items[i].addr)
            shmdt(items[i].addr);
    }
    if (bad || !backup)
        remove_created();
    return bad ? 1 : 0;
}
