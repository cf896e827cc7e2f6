// Who is on the other end of a unix socket, and group lookups, for the local API's authorization.
#ifndef PH_PEERCRED_H
#define PH_PEERCRED_H
#include <node_api.h>
// peerCred(fd) -> { pid, uid, gid, groups: number[] | null } (groups null: kernel without SO_PEERGROUPS).
napi_value ph_peer_cred(napi_env env, napi_callback_info info);
// groupId(name) -> gid, or null when no such group.
napi_value ph_group_id(napi_env env, napi_callback_info info);
// groupName(gid) -> name, or null when no such group.
napi_value ph_group_name(napi_env env, napi_callback_info info);
#endif
