/// A trace in the Chrome trace-event JSON format, which ui.perfetto.dev and chrome://tracing
/// load: processes holding named tracks (threads), with slices, instants and counters.
///
/// Timestamps are the kernel scheduler's step count, written as microseconds: one scheduling
/// decision (one job run) is 1 µs. The virtual clock would put most of a run at the same
/// instant; the step count orders everything and is deterministic, so the same fixture and
/// seed give a byte-identical file.
///
/// Bounded: past `capacity` events, further ones are counted in ``dropped`` (and in the
/// file's metadata), not kept; track names are kept once each.
public final class PerfettoTrace {
    /// The processes tracks are grouped under.
    public enum Group: Int, CaseIterable, Sendable {
        /// One track per kernel context: its wait points as slices, driver functions entered
        /// as instants.
        case kernel = 1
        /// The SMMU: commands consumed (slices), event records (instants), queue occupancy
        /// (counters).
        case smmu = 2
        /// One track per PCIe endpoint: DMA, page requests, stop markers, PRG responses.
        case endpoints = 3
        /// One track per PASID (allocated) and per device and PASID (seed-001 context state).
        case pasids = 4

        var title: String {
            switch self {
            case .kernel: "kernel contexts"
            case .smmu: "SMMU"
            case .endpoints: "PCIe endpoints"
            case .pasids: "PASIDs"
            }
        }
    }

    /// Events kept at most (metadata aside).
    public let capacity: Int
    /// Events not kept because the trace was full.
    public private(set) var dropped = 0
    private var events: [String] = []
    private var metadata: [String] = []
    private var tracks: [Group: [String: Int]] = [:]
    /// Slices begun and not yet ended, by track.
    private var open: [TrackKey: [String?]] = [:]
    private var lastTimestamp: UInt64 = 0

    private struct TrackKey: Hashable {
        let group: Group
        let tid: Int
    }

    /// An empty trace keeping at most `capacity` events.
    public init(capacity: Int = 1_000_000) {
        self.capacity = max(capacity, 0)
        for group in Group.allCases {
            metadata.append(#"{"name":"process_name","ph":"M","pid":\#(group.rawValue),"tid":0,"args":{"name":\#(Self.quote(group.title))}}"#)
            metadata.append(#"{"name":"process_sort_index","ph":"M","pid":\#(group.rawValue),"tid":0,"args":{"sort_index":\#(group.rawValue)}}"#)
        }
    }

    /// Events kept.
    public var count: Int { events.count }

    /// The most tracks a trace names (their events are dropped beyond: a run that recycles
    /// PASIDs or contexts without end cannot grow the metadata without bound either).
    public static let maximumTracks = 4096
    private var trackCount = 0

    /// The track named `name` in `group`, created (with its name metadata) on first use.
    private func track(_ group: Group, _ name: String) -> Int? {
        if let tid = tracks[group]?[name] { return tid }
        guard trackCount < Self.maximumTracks else { return nil }
        trackCount += 1
        let tid = (tracks[group]?.count ?? 0) + 1
        tracks[group, default: [:]][name] = tid
        metadata.append(#"{"name":"thread_name","ph":"M","pid":\#(group.rawValue),"tid":\#(tid),"args":{"name":\#(Self.quote(name))}}"#)
        metadata.append(#"{"name":"thread_sort_index","ph":"M","pid":\#(group.rawValue),"tid":\#(tid),"args":{"sort_index":\#(tid)}}"#)
        return tid
    }

    private func drop() {
        dropped += 1
    }

    private func append(_ event: String, at timestamp: UInt64) {
        lastTimestamp = max(lastTimestamp, timestamp)
        guard events.count < capacity else {
            dropped += 1
            return
        }
        events.append(event)
    }

    private static func arguments(_ args: [(String, String)]) -> String {
        guard !args.isEmpty else { return "" }
        return #","args":{"# + args.map { "\(quote($0.0)):\(quote($0.1))" }.joined(separator: ",") + "}"
    }

    /// A point in time on a track (`ph: i`).
    public func instant(_ group: Group, track name: String, _ event: String, at timestamp: UInt64, args: [(String, String)] = []) {
        guard let tid = track(group, name) else { return drop() }
        append(#"{"name":\#(Self.quote(event)),"ph":"i","s":"t","ts":\#(timestamp),"pid":\#(group.rawValue),"tid":\#(tid)\#(Self.arguments(args))}"#, at: timestamp)
    }

    /// A slice of known length (`ph: X`).
    public func complete(_ group: Group, track name: String, _ event: String, at timestamp: UInt64, duration: UInt64 = 1, args: [(String, String)] = []) {
        guard let tid = track(group, name) else { return drop() }
        append(#"{"name":\#(Self.quote(event)),"ph":"X","ts":\#(timestamp),"dur":\#(duration),"pid":\#(group.rawValue),"tid":\#(tid)\#(Self.arguments(args))}"#, at: timestamp)
    }

    /// Opens a slice on a track (`ph: B`), closed by ``end(_:track:at:)``; slices on one track
    /// nest.
    public func begin(_ group: Group, track name: String, _ event: String, at timestamp: UInt64, args: [(String, String)] = []) {
        guard let tid = track(group, name) else { return drop() }
        guard events.count < capacity else {
            // Remembered as dropped, so that its end is dropped too.
            open[TrackKey(group: group, tid: tid), default: []].append(nil)
            dropped += 1
            return
        }
        open[TrackKey(group: group, tid: tid), default: []].append(event)
        append(#"{"name":\#(Self.quote(event)),"ph":"B","ts":\#(timestamp),"pid":\#(group.rawValue),"tid":\#(tid)\#(Self.arguments(args))}"#, at: timestamp)
    }

    /// Closes the innermost open slice of a track (`ph: E`); nothing when none is open (the
    /// begin was dropped).
    public func end(_ group: Group, track name: String, at timestamp: UInt64) {
        guard let tid = tracks[group]?[name] else { return }
        let key = TrackKey(group: group, tid: tid)
        guard let popped = open[key]?.popLast(), popped != nil else { return }
        // An end is always kept when its begin was, so that every kept slice is closed.
        lastTimestamp = max(lastTimestamp, timestamp)
        events.append(#"{"ph":"E","ts":\#(timestamp),"pid":\#(group.rawValue),"tid":\#(tid)}"#)
    }

    /// Whether a slice is open on a track.
    public func isOpen(_ group: Group, track name: String) -> Bool {
        guard let tid = tracks[group]?[name] else { return false }
        return !(open[TrackKey(group: group, tid: tid)]?.isEmpty ?? true)
    }

    /// A counter value (`ph: C`): a graph named `name` in `group`.
    public func counter(_ group: Group, _ name: String, _ value: Int, at timestamp: UInt64) {
        append(#"{"name":\#(Self.quote(name)),"ph":"C","ts":\#(timestamp),"pid":\#(group.rawValue),"args":{"value":\#(value)}}"#, at: timestamp)
    }

    /// The JSON document: every slice still open is closed at the last timestamp.
    public var json: String {
        var closing: [String] = []
        for (key, names) in open.sorted(by: { ($0.key.group.rawValue, $0.key.tid) < ($1.key.group.rawValue, $1.key.tid) }) {
            for _ in names.compactMap({ $0 }) {
                closing.append(#"{"ph":"E","ts":\#(lastTimestamp),"pid":\#(key.group.rawValue),"tid":\#(key.tid)}"#)
            }
        }
        let all = metadata + events + closing
        return #"{"displayTimeUnit":"ns","otherData":{"timestamps":"kernel scheduler steps (1 us = 1 job)","dropped_events":"\#(dropped)"},"traceEvents":[\#n"#
            + all.joined(separator: ",\n") + "\n]}\n"
    }

    /// A JSON string literal.
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    result += "\\u00" + String(scalar.value, radix: 16).leftPadded(to: 2)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
