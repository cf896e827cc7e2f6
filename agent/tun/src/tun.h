#ifndef PH_TUN_H
#define PH_TUN_H
#include <node_api.h>
// Defines the native `Tun` class: new Tun(name) opens /dev/net/tun and attaches/creates NAME.
napi_value ph_tun_define(napi_env env);
#endif
