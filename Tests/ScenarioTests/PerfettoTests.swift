import Foundation
import Testing
import Scenario

/// `--perfetto`: the run's timeline as Chrome trace-event JSON that parses, with a track per
/// kernel context, the SMMU and each endpoint, balanced slices, queue counters and PASID spans.
@Suite struct PerfettoTests {
    static func demoTimeline(capacity: Int = 1_000_000) throws -> (PerfettoTrace, FixtureRun) {
        let fixture = try FixtureTests.bundled("sva-demo.fixture")
        let trace = PerfettoTrace(capacity: capacity)
        let run = FixtureRunner(fixture: fixture).run(seed: fixture.seeds?.lowerBound, perfetto: trace)
        return (trace, run)
    }

    /// The parsed events, and the track names by (pid, tid).
    static func parse(_ json: String) throws -> (events: [[String: Any]], tracks: [[Int]: String]) {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let events = try #require(document["traceEvents"] as? [[String: Any]])
        var tracks: [[Int]: String] = [:]
        for event in events where event["name"] as? String == "thread_name" {
            let args = try #require(event["args"] as? [String: Any])
            tracks[[event["pid"] as? Int ?? -1, event["tid"] as? Int ?? -1]] = args["name"] as? String
        }
        return (events, tracks)
    }

    @Test func theTimelineParsesWithATrackPerContextTheSMMUAndEachEndpoint() throws {
        let (trace, run) = try Self.demoTimeline()
        #expect(run.passed)
        let (events, tracks) = try Self.parse(trace.json)
        let names = Set(tracks.values)
        for expected in ["hw/smmu", "irq/37-arm-smmu-v3-priq", "fixture:21", "command processor", "gpu", "PASID 1", "PASID 1 gpu"] {
            #expect(names.contains(expected), "no track \(expected): \(names.sorted())")
        }
        for event in events {
            let phase = try #require(event["ph"] as? String)
            #expect(["M", "B", "E", "X", "i", "C"].contains(phase))
            #expect(event["pid"] is Int)
            if phase != "M" { #expect(event["ts"] is Int, "\(event)") }
        }
        // Commands are slices on the command processor's track, in the order consumed.
        let commands = events.filter { $0["ph"] as? String == "X" }.compactMap { $0["name"] as? String }
        #expect(commands.first == "CMD_CFGI_ALL")
        #expect(commands.contains("CMD_PRI_RESP"))
        #expect(commands.contains("CMD_CFGI_CD"))
        // The PRI IRQ thread entered the PPR handler (a function instant on its track).
        let priqTrack = try #require(tracks.first { $0.value == "irq/37-arm-smmu-v3-priq" }?.key)
        #expect(events.contains { $0["ph"] as? String == "i" && $0["name"] as? String == "arm_smmu_handle_ppr" && [$0["pid"] as? Int ?? 0, $0["tid"] as? Int ?? 0] == priqTrack })
        // The PRI queue held the request before the driver read it.
        let priq = events.filter { $0["ph"] as? String == "C" && $0["name"] as? String == "PRIQ unread" }
        #expect(priq.contains { (($0["args"] as? [String: Any])?["value"] as? Int ?? 0) >= 1 })
    }

    @Test func slicesBalanceOnEveryTrackAndPASIDStatesFollowSeed001() throws {
        let (trace, _) = try Self.demoTimeline()
        let (events, tracks) = try Self.parse(trace.json)
        var depth: [[Int]: Int] = [:]
        for event in events {
            let key = [event["pid"] as? Int ?? 0, event["tid"] as? Int ?? 0]
            switch event["ph"] as? String {
            case "B": depth[key, default: 0] += 1
            case "E":
                depth[key, default: 0] -= 1
                #expect(depth[key, default: 0] >= 0, "an end without a begin on \(tracks[key] ?? "?")")
            default: break
            }
        }
        #expect(depth.values.allSatisfy { $0 == 0 })
        // The demo's context for PASID 1 on gpu: used, stale after unbind, freed by the stop
        // marker, used again by the next process (the PASID recycled).
        let contextTrack = try #require(tracks.first { $0.value == "PASID 1 gpu" }?.key)
        let states = events.filter { $0["ph"] as? String == "B" && [$0["pid"] as? Int ?? 0, $0["tid"] as? Int ?? 0] == contextTrack }.compactMap { $0["name"] as? String }
        #expect(states == ["used", "stale", "none", "used"], "\(states)")
        let pasidTrack = try #require(tracks.first { $0.value == "PASID 1" }?.key)
        let owners = events.filter { $0["ph"] as? String == "B" && [$0["pid"] as? Int ?? 0, $0["tid"] as? Int ?? 0] == pasidTrack }.compactMap { $0["name"] as? String }
        // Unbound, the PASID stays allocated without a process until the stop marker frees it.
        #expect(owners == ["allocated (editor)", "allocated (released)", "allocated (compiler)"], "\(owners)")
    }

    @Test func theSameFixtureGivesTheSameBytes() throws {
        let (first, _) = try Self.demoTimeline()
        let (second, _) = try Self.demoTimeline()
        #expect(first.json == second.json)
    }

    @Test func aFullTimelineCountsWhatItDropsAndStaysValid() throws {
        let (trace, run) = try Self.demoTimeline(capacity: 25)
        #expect(run.passed)
        #expect(trace.count <= 25 + 25)
        #expect(trace.dropped > 0)
        let json = trace.json
        #expect(json.contains("\"dropped_events\":\"\(trace.dropped)\""))
        let (events, _) = try Self.parse(json)
        let begins = events.filter { $0["ph"] as? String == "B" }.count
        let ends = events.filter { $0["ph"] as? String == "E" }.count
        #expect(begins == ends)
    }

    @Test func tracksAreBoundedAndTheirEventsCountedAsDropped() throws {
        let trace = PerfettoTrace()
        for index in 0..<(PerfettoTrace.maximumTracks + 10) {
            trace.begin(.pasids, track: "PASID \(index)", "used", at: UInt64(index))
            trace.end(.pasids, track: "PASID \(index)", at: UInt64(index) + 1)
        }
        #expect(trace.dropped == 10)
        let (events, tracks) = try Self.parse(trace.json)
        #expect(tracks.count == PerfettoTrace.maximumTracks)
        #expect(events.filter { $0["ph"] as? String == "B" }.count == events.filter { $0["ph"] as? String == "E" }.count)
    }

    @Test func quotingEscapesWhatJSONForbids() throws {
        let trace = PerfettoTrace()
        trace.instant(.kernel, track: "ctx \"q\"", "a\\b\nc\u{1}", at: 1)
        let (events, tracks) = try Self.parse(trace.json)
        #expect(tracks.values.contains("ctx \"q\""))
        #expect(events.contains { $0["name"] as? String == "a\\b\nc\u{1}" })
    }
}
