/**
 * EBS device names on Windows instances. EC2 accepts `xvd[f-z]` (and `/dev/sd[f-p]`) for data volumes of
 * Windows instances; `/dev/sda1` is the root. `xvdf`, `/dev/xvdf` and `/dev/sdf` name the same slot, so
 * they are compared by their slot (`f`), never as strings.
 */

/** Device names accepted in the restore input and read from snapshot tags. */
export const DEVICE_NAME_PATTERN = /^(\/dev\/)?(sd[a-z]{1,2}[0-9]*|xvd[a-z]{1,2}[0-9]*)$/;
/** At most this many volumes per restore: the restore document's VolumeIds takes 1 to 40 ids. */
export const MAX_RESTORE_VOLUMES = 40;
/** The names the restore attaches at, in order: the Windows data-volume range. */
export const RESTORE_DEVICE_NAMES = 'fghijklmnopqrstuvwxyz'.split('').map((letter) => `xvd${letter}`);

/** `/dev/xvdf` -> `xvdf`: the form compared against the input's `devices` and shown in reports. */
export function normalizeDevice(device: string): string {
  return device.replace(/^\/dev\//, '');
}

/** The slot a device name occupies: `xvdf`, `/dev/sdf` and `/dev/xvdf1` are all slot `f`. */
export function deviceSlot(device: string): string {
  const name = normalizeDevice(device);
  const match = /^(?:xv|s)d([a-z]{1,2})[0-9]*$/.exec(name);
  return match ? (match[1] as string) : name;
}

/**
 * Picks a free device name for each of `count` volumes, never one whose slot is in use on the target.
 * Returns undefined when there are not enough free names.
 */
export function freeDeviceNames(inUse: Iterable<string>, count: number): string[] | undefined {
  const used = new Set([...inUse].map(deviceSlot));
  const free = RESTORE_DEVICE_NAMES.filter((name) => !used.has(deviceSlot(name)));
  return free.length >= count ? free.slice(0, count) : undefined;
}
