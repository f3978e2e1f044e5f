import Foundation
import Synchronization
import Testing

@testable import Server

/// `GET /v1/jobs/{id}?wait=N`: the query, and the waiters resumed by a job's finish.
struct LongPollTests {
    @Test func waitQueryIsAnIntegerInZeroToSixty() throws {
        #expect(try JobWait.seconds(nil) == 0)
        #expect(try JobWait.seconds("0") == 0)
        #expect(try JobWait.seconds("60") == 60)
        for bad in ["61", "-1", "", "1.5", "abc", " 5", "+5", "99999999999999999999"] {
            #expect(throws: APIError.self, "\(bad)") { try JobWait.seconds(bad) }
        }
    }

    @Test func aFinishResumesEveryWaiterOfThatJobAtOnce() async throws {
        let completions = JobCompletions()
        let done = Flag()
        let clock = ContinuousClock()
        let start = clock.now
        async let first = completions.wait(for: "a", timeout: .seconds(30)) { done.value.load(ordering: .acquiring) }
        async let second = completions.wait(for: "a", timeout: .seconds(30)) { done.value.load(ordering: .acquiring) }
        async let other = completions.wait(for: "b", timeout: .seconds(30)) { false }
        // Every waiter is registered before the job finishes: the finish of "a" must reach both of its waiters
        // (a waiter that registered after the finish would see the job finished, but then nothing is tested).
        while completions.waiting(for: "a") < 2 || completions.waiting(for: "b") < 1 { await Task.yield() }
        done.value.store(true, ordering: .releasing)
        completions.finished("a")
        #expect(await first)
        #expect(await second)
        #expect(clock.now - start < .seconds(10))
        // "b" is untouched by the finish of "a".
        #expect(completions.waiting(for: "b") == 1)
        completions.finished("b")
        #expect(await other)
        #expect(completions.count == 0)
    }

    @Test func aWaiterTimesOutWithoutAFinish() async {
        let completions = JobCompletions()
        let clock = ContinuousClock()
        let start = clock.now
        let finished = await completions.wait(for: "x", timeout: .milliseconds(200)) { false }
        #expect(!finished)
        #expect(clock.now - start >= .milliseconds(200))
        #expect(completions.count == 0)
    }

    @Test func anAlreadyFinishedJobAnswersAtOnce() async {
        let completions = JobCompletions()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await completions.wait(for: "x", timeout: .seconds(30)) { true })
        #expect(clock.now - start < .seconds(10))
        #expect(completions.count == 0)
    }

    @Test func aCanceledWaiterIsResumedAndForgotten() async {
        let completions = JobCompletions()
        let task = Task { await completions.wait(for: "x", timeout: .seconds(30)) { false } }
        while completions.count < 1 { await Task.yield() }
        task.cancel()
        #expect(await task.value == false)
        #expect(completions.count == 0)
    }

    @Test func theServerRefusesABadWaitAndAnswersAFinishedJobAtOnce() async throws {
        let server = try await TestServer(namespaces: ["poll-query"])
        defer { server.stopNow() }
        for bad in ["61", "x", "-1"] {
            let response = try await server.request("GET", "/v1/jobs/nope?wait=\(bad)")
            #expect(response.status == 400, "\(bad)")
            #expect(response.errorCode == "INVALID_QUERY")
        }
        let missing = try await server.request("GET", "/v1/jobs/nope?wait=5")
        #expect(missing.errorCode == "JOB_NOT_FOUND")
    }
}

extension ShmTests {
    @Suite struct LongPollJobTests {
        @Test func aLongPollAnswersWhenTheJobEnds() async throws {
            let segments = try await TestSegments.make(
                instance: 15, nsid: 24, name: "poll-job", stages: 4, stageSize: 16 << 20)
            defer { segments.cleanUp() }
            let server = try await TestServer(instance: 15, namespaces: ["poll-job"], compress: true)
            defer { server.stopNow() }
            let submitted = try await server.request("POST", "/v1/backup", body: #"{"instance":15,"threads":1}"#)
            let id = try #require(submitted.json["id"] as? String, "\(submitted.text)")
            let clock = ContinuousClock()
            let start = clock.now
            let job = try await server.request("GET", "/v1/jobs/\(id)?wait=60")
            #expect(job.status == 200)
            #expect(job.json["state"] as? String == "success", "\(job.text)")
            #expect(clock.now - start < .seconds(55))
            // A finished job answers at once, whatever the wait.
            let again = try await server.request("GET", "/v1/jobs/\(id)?wait=60")
            #expect(again.json["state"] as? String == "success")
        }
    }
}

private final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
