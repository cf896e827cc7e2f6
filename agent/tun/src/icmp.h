#ifndef PH_ICMP_H
#define PH_ICMP_H
#include <node_api.h>
// Defines the native `Icmp` class: new Icmp(family, bufferBytes) opens an ICMP echo socket
// (unprivileged ping socket, else raw).
napi_value ph_icmp_define(napi_env env);
#endif
