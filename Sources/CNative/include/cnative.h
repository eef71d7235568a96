#ifndef CNATIVE_H
#define CNATIVE_H
#endif
