#ifndef CISAL_H
#define CISAL_H
/* Placeholder: the ShmEngine work replaces this with the ISA-L run-time loader. */
int cisal_available(void);
#endif
