/// The query of GET /v1/jobs: `type`, `state` and `limit`, parsed (pure).
struct JobFilters: Sendable, Equatable {
    var types: Set<JobType>?
    var states = StateFilter()
    var limit = 100

    static func parse(type: String?, state: String?, limit: String?) throws(APIError) -> JobFilters {
        var filters = JobFilters()
        if let type, !type.isEmpty {
            var set = Set<JobType>()
            for part in type.split(separator: ",") {
                guard let type = JobType(rawValue: String(part)) else {
                    throw APIError(.invalidQuery, "unknown type \"\(part)\"; use backup or restore")
                }
                set.insert(type)
            }
            filters.types = set
        }
        filters.states = try StateFilter.parse(state)
        if let limit {
            guard let n = Int(limit), (1...10000).contains(n) else {
                throw APIError(.invalidQuery, "limit must be an integer in 1..10000")
            }
            filters.limit = n
        }
        return filters
    }

    func matches(_ record: JobRecord) -> Bool {
        (types?.contains(record.type) ?? true) && states.matches(record.state)
    }
}

/// `state` filter of GET /v1/jobs: a comma-separated list, `!` excludes (ABS v3 syntax).
struct StateFilter: Sendable, Equatable {
    var include: Set<JobState> = []
    var exclude: Set<JobState> = []

    static func parse(_ text: String?) throws(APIError) -> StateFilter {
        var filter = StateFilter()
        guard let text, !text.isEmpty else { return filter }
        for part in text.split(separator: ",") {
            let negated = part.hasPrefix("!")
            let name = negated ? String(part.dropFirst()) : String(part)
            guard let state = JobState(rawValue: name) else {
                let names = JobState.allCases.map(\.rawValue).joined(separator: ", ")
                throw APIError(.invalidQuery, "unknown state \"\(name)\"; use \(names), each optionally prefixed by !")
            }
            if negated { filter.exclude.insert(state) } else { filter.include.insert(state) }
        }
        return filter
    }

    func matches(_ state: JobState) -> Bool {
        (include.isEmpty || include.contains(state)) && !exclude.contains(state)
    }
}
