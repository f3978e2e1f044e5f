/// The order in which restore workers take chunks. Pure logic.
enum ChunkOrder {
    /// Chunks `0..<counts[f]` of every file `f`, round-robin over a window of at most `window` files: concurrent
    /// workers mostly touch different segments and files (two threads faulting pages into one shmem segment, or
    /// writing one file, contend on its locks), while a file enters the window only when an earlier one has handed
    /// out its last chunk, so that at most `window` + threads files are open at once.
    static func windowed(_ counts: [Int], window: Int) -> [(file: Int, chunk: Int)] {
        let width = max(1, window)
        var result: [(file: Int, chunk: Int)] = []
        result.reserveCapacity(counts.reduce(0) { $0 + max(0, $1) })
        var active: [(file: Int, next: Int)] = []
        var upcoming = 0
        while true {
            while active.count < width && upcoming < counts.count {
                if counts[upcoming] > 0 { active.append((upcoming, 0)) }
                upcoming += 1
            }
            if active.isEmpty { return result }
            for index in active.indices {
                result.append((active[index].file, active[index].next))
                active[index].next += 1
            }
            active.removeAll { $0.next >= counts[$0.file] }
        }
    }
}
