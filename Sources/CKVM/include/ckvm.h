#ifndef CKVM_H
#define CKVM_H
#include <linux/kvm.h>
#endif
