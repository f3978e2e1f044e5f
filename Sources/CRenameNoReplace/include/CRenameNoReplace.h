#ifndef CRENAMENOREPLACE_H
#define CRENAMENOREPLACE_H

/*
 * renameat2(RENAME_NOREPLACE), a GNU extension that Swift's Glibc module does not export.
 * Returns 0, or -1 with errno (EEXIST when `to` exists; EINVAL or ENOSYS where the file system or kernel lacks it).
 */
int crename_noreplace(const char *from, const char *to);

#endif
