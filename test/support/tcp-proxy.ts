// One TCP proxy implementation for the tests and the chaos run: scripts/tcp-proxy.mjs (typed by its .d.mts).
export { type TcpProxy, tcpProxy } from '../../scripts/tcp-proxy.mjs';
