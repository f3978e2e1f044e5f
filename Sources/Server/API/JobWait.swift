/// The long-poll of `GET /v1/jobs/{id}?wait=SECONDS`.
enum JobWait {
    static let maximumSeconds = 60

    /// The `wait` query value: absent means 0 (answer at once); an integer 0..60 otherwise (pure).
    static func seconds(_ text: String?) throws(APIError) -> Int {
        guard let text else { return 0 }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let seconds = Int(text),
            seconds <= maximumSeconds
        else {
            throw APIError(.invalidQuery, "wait must be an integer number of seconds in 0..\(maximumSeconds)")
        }
        return seconds
    }
}
