// IEEE 754 half precision ↔ number lives in @edgefleet/shared (one implementation for agent and hub).
export { fromHalf, toHalf } from '@edgefleet/shared';
