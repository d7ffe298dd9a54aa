// The protocol-faithful fakes live with the demo (src/demo/simulated), which runs them as its simulated peers.
export * from '../../src/demo/simulated/mediamtx.js';
