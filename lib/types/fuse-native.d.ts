// The parts of fuse-native (2.x, untyped) that remapfs uses.
declare module 'fuse-native' {
  class Fuse {
    constructor(mnt: string, ops: object, opts?: object);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    _fuseOptions(): string;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static ENOENT: number;
    static EIO: number;
    static ENOSPC: number;
    static EINVAL: number;
    static EPERM: number;
    static EACCES: number;
    static EROFS: number;
    static EBUSY: number;
    static ENOTDIR: number;
  }
  export = Fuse;
}
