// SO_MARK for the agent's own sockets (sockmark.c): what keeps tunnel traffic out of the tunnel.
#ifndef PH_SOCKMARK_H
#define PH_SOCKMARK_H

#include <node_api.h>
#include <stdint.h>

// Sets SO_MARK on fd (nothing for mark 0); -1 with errno on failure (EPERM without CAP_NET_ADMIN).
int ph_set_mark(int fd, uint32_t mark);
// Throws the one-line error for a failed ph_set_mark.
void ph_throw_mark_error(napi_env env, int err, uint32_t mark);
// Adds markedTcpSocket(family, mark) and socketMark(fd) to the module's exports.
napi_status ph_sockmark_define(napi_env env, napi_value exports);

#endif
