import HTTP1
import ShmEngine

/// GET /v1/segments.
extension API {
    func listSegments(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        let filter = try Self.instanceQuery(request)
        // The listing attaches bases and data stages to read their names: the watcher looks before and after.
        let watched = config.instances.map(\.instance).filter { filter == nil || $0 == filter }
        let watcher = watcher
        let result = await Blocking.run { () throws(EngineError) -> [LiveSegment] in
            for n in watched { watcher?.beginOwn(n) }
            defer { for n in watched { watcher?.endOwn(n) } }
            return try SharedMemory.segments(instance: filter)
        }
        let segments = try result.mapError { APIError($0) }.get()
        return Responses.json(200, SegmentList(segments: segments.sorted { $0.key < $1.key }.map(SegmentView.init)))
    }
}
