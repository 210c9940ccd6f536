/**
 * /proc/device-tree/model is the device tree's `model` property: a C string, so it ends in NUL
 * (e.g. "Raspberry Pi 4 Model B Rev 1.4\0"). Absent on x86 and on boards booted by ACPI.
 */
export function parseDeviceTreeModel(raw: string): string | undefined {
  const model = raw.replace(/\0[\s\S]*$/, '').trim();
  return model === '' ? undefined : model;
}

/**
 * /etc/nv_tegra_release is one comment line written by NVIDIA's L4T (Jetson Linux) installer:
 * "# R35 (release), REVISION: 4.1, GCID: …, BOARD: t186ref, EABI: aarch64, DATE: …". The release
 * people quote (and JetPack maps to) is major.revision: "35.4.1".
 */
export function parseTegraRelease(raw: string): string | undefined {
  const m = /^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)/m.exec(raw);
  return m ? `${m[1]}.${m[2]}` : undefined;
}

/** Jetson device trees name the module or kit ("NVIDIA Jetson AGX Orin Developer Kit", "Jetson-AGX"). */
export function isJetsonBoard(board: string): boolean {
  return /jetson/i.test(board);
}
