import Glibc
import ShmEngine

/// Free space in a backup path against the bytes a backup will write.
enum SpaceCheck {
    /// Bytes a backup will write (pure): plain files hold the segment bytes; compressed ones at most `ratio` of
    /// them (measured on an earlier compressed backup of the instance, or 1.0 when none was); base and meta are
    /// never compressed. Plus 1 % and 16 MiB for headers, the manifest and the file system's own use.
    static func required(segments: [(kind: SegmentKind, size: UInt64)], compress: Bool, ratio: Double?) -> UInt64 {
        let r = min(max(ratio ?? 1.0, 0.01), 1.0)
        var total = 0.0
        for segment in segments {
            let size = Double(segment.size)
            total += compress && segment.kind.compressible ? size * r : size
        }
        return UInt64((total * 1.01).rounded(.up)) + (16 << 20)
    }

    /// Bytes available to an unprivileged writer below `path` (nil when statvfs fails).
    static func available(_ path: String) -> UInt64? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return UInt64(st.f_bavail) * UInt64(st.f_frsize)
    }
}
