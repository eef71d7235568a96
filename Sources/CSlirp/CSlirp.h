// libslirp (Debian's libslirp-dev): the user-mode TCP/IP stack behind `--net user`.
// Included by its system path rather than through pkg-config: Debian's slirp.pc requires
// glib-2.0's .pc file, which only libglib2.0-dev installs, and Trivisor needs no glib headers.
#include <slirp/libslirp.h>
