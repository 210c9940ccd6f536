/**
 * Readable names for the `CPU implementer`/`CPU part` pairs an ARM kernel prints in /proc/cpuinfo
 * (arm64 has no `model name` line), from the MIDR values in Arm's and NVIDIA's technical reference
 * manuals. Only cores an edge device plausibly has; an unknown pair is reported raw.
 */
const PARTS: Readonly<Record<string, string>> = {
  '0x41:0xc07': 'Cortex-A7',
  '0x41:0xc09': 'Cortex-A9',
  '0x41:0xc0f': 'Cortex-A15',
  '0x41:0xd03': 'Cortex-A53',
  '0x41:0xd04': 'Cortex-A35',
  '0x41:0xd05': 'Cortex-A55',
  '0x41:0xd07': 'Cortex-A57',
  '0x41:0xd08': 'Cortex-A72',
  '0x41:0xd09': 'Cortex-A73',
  '0x41:0xd0a': 'Cortex-A75',
  '0x41:0xd0b': 'Cortex-A76',
  '0x41:0xd0c': 'Neoverse-N1',
  '0x41:0xd0d': 'Cortex-A77',
  '0x41:0xd40': 'Neoverse-V1',
  '0x41:0xd41': 'Cortex-A78',
  '0x41:0xd42': 'Cortex-A78AE',
  '0x41:0xd44': 'Cortex-X1',
  '0x41:0xd46': 'Cortex-A510',
  '0x41:0xd47': 'Cortex-A710',
  '0x41:0xd48': 'Cortex-X2',
  '0x41:0xd49': 'Neoverse-N2',
  '0x41:0xd4b': 'Cortex-A78C',
  '0x41:0xd4f': 'Neoverse-V2',
  '0x41:0xd80': 'Cortex-A520',
  '0x41:0xd81': 'Cortex-A720',
  '0x4e:0x004': 'NVIDIA Carmel',
};

/** The core's name for an implementer/part pair as /proc/cpuinfo prints them ("0x41", "0xd08"), or undefined. */
export function armCoreName(implementer: string, part: string): string | undefined {
  return PARTS[`${implementer.toLowerCase()}:${part.toLowerCase()}`];
}
