import Foundation
import Testing
import Scenario

/// `smmuv3 step`: stops after each command the SMMU consumes, at opcodes, events, StreamIDs
/// and driver functions, without changing the run; its views show what the hardware holds.
@Suite struct StepperTests {
    static let bringUp = """
    device gpu sid=0x10 ats pri
    process app
    area app 0x400000 size=4M
    probe
    domain d0
    add-device gpu
    attach gpu d0
    sva-init gpu
    bind gpu app
    dma gpu write 0x400000 data="hi" pasid=app as=first
    expect dma first completed
    """

    static func stepper(_ text: String, seed: UInt64? = nil) throws -> FixtureStepper {
        try FixtureStepper(fixture: FixtureCompiler.compile(text, file: "step.fixture").get(), seed: seed)
    }

    @Test func nextStopsAfterEachCommandInQueueOrderWithItsEffect() throws {
        let stepper = try Self.stepper(Self.bringUp)
        // arm_smmu_device_reset invalidates every cached configuration first (CMD_CFGI_ALL,
        // then CMD_SYNC), and the hardware consumes in CONS order from slot 0.
        let first = stepper.execute("next")
        #expect(first.first?.hasPrefix("stopped: hw/smmu consumed CMDQ [0] CMD_CFGI_ALL: invalidated") == true, "\(first)")
        let second = stepper.execute("next")
        #expect(second.first?.contains("consumed CMDQ [1] CMD_SYNC") == true, "\(second)")
        #expect(second.contains("  (fixture line 4: probe)"))
        let ring = stepper.execute("queue cmdq")
        #expect(ring.contains { $0.contains("CONS 0x2 (index 2, wrap 0)") }, "\(ring)")
        #expect(ring.contains { $0.contains("consumed CMD_SYNC") })
    }

    @Test func continueToAnOpcodeStopsOnceThatCommandTookEffect() throws {
        let stepper = try Self.stepper(Self.bringUp)
        let output = stepper.execute("continue CMD_PRI_RESP")
        #expect(output.contains { $0.hasPrefix("stopped: hw/smmu consumed CMDQ") && $0.contains("CMD_PRI_RESP sid=0x10 ssid=0x1") }, "\(output)")
        // The PRG response left with the command, but the DMA step has not finished yet.
        #expect(stepper.execute("where").first == "running fixture line 10: dma gpu write 0x400000 data=\"hi\" pasid=app as=first")
        let rest = stepper.execute("continue")
        #expect(rest.last == "the run is finished: 8 of 8 checks passed", "\(rest)")
        #expect(stepper.isFinished)
        #expect(stepper.execute("next") == ["the run is finished"])
    }

    @Test func aFunctionBreakpointStopsTheContextThatEnteredIt() throws {
        let stepper = try Self.stepper(Self.bringUp)
        #expect(stepper.execute("break arm_smmu_handle_ppr") == ["breakpoint 1: arm_smmu_handle_ppr"])
        let output = stepper.execute("continue")
        #expect(output.contains { $0.hasPrefix("stopped: irq/") && $0.contains("-priq entered arm_smmu_handle_ppr") }, "\(output)")
        let contexts = stepper.execute("contexts")
        #expect(contexts.contains { $0.hasPrefix("hw/smmu") && $0.contains("(daemon)") }, "\(contexts)")
        #expect(contexts.contains { $0.contains("waiting in worker_thread(iopf_queue/") }, "\(contexts)")
        #expect(stepper.execute("pasids") == ["PASID 1: allocated (bound for app)", "  gpu (sid 16) PASID 1: context used"])
        #expect(stepper.execute("delete 1") == ["deleted breakpoint 1: arm_smmu_handle_ppr"])
        #expect(stepper.execute("continue").last == "the run is finished: 8 of 8 checks passed")
    }

    @Test func anEventTargetStopsOnTheRecordTheSMMUProduced() throws {
        let stepper = try Self.stepper("""
        device gpu sid=0x10
        probe
        domain d0
        add-device gpu
        attach gpu d0
        dma gpu read 0x5000 as=unmapped
        expect event F_TRANSLATION sid=0x10 addr=0x5000
        """)
        let output = stepper.execute("continue F_TRANSLATION")
        #expect(output.contains { $0.hasPrefix("stopped: event F_TRANSLATION") }, "\(output)")
        #expect(output.contains("  (fixture line 6: dma gpu read 0x5000 as=unmapped)"))
        // The record is in the Event queue, not yet read by the driver's IRQ thread.
        let ring = stepper.execute("queue evtq")
        #expect(ring.contains { $0.contains("1 unread") }, "\(ring)")
        #expect(ring.contains { $0.contains("<- CONS F_TRANSLATION") }, "\(ring)")
    }

    @Test func theStreamIDTargetStopsOnCommandsAndEventsNamingIt() throws {
        let stepper = try Self.stepper(Self.bringUp)
        let output = stepper.execute("continue sid 0x10")
        #expect(output.contains { $0.contains("consumed CMDQ") && $0.contains("sid=0x10") }, "\(output)")
        #expect(output.contains("  (fixture line 7: attach gpu d0)"), "\(output)")
    }

    @Test func steAndCDShowWhatTheSMMUWouldFetch() throws {
        let stepper = try Self.stepper(Self.bringUp)
        #expect(stepper.execute("ste 16") == ["no stream table programmed yet (STRTAB_BASE is 0)"])
        _ = stepper.execute("continue CMD_PRI_RESP")
        let ste = stepper.execute("ste 16")
        #expect(ste.first?.hasPrefix("STE for SID 16 at 0x") == true, "\(ste)")
        #expect(ste.contains("  Config = 0b101 (stage 1 translate)"))
        #expect(ste.last == "  verdict: valid")
        let cd = stepper.execute("cd 16 1")
        #expect(cd.first?.hasPrefix("CD for SID 16 SSID 1 at 0x") == true, "\(cd)")
        #expect(cd.contains("  V = 0b1 (valid)"), "\(cd)")
        #expect(cd.last == "  verdict: valid")
        #expect(stepper.execute("cd 16 0x1000").first?.hasPrefix("C_BAD_SUBSTREAMID") == true)
        #expect(stepper.execute("ste 0x100000").first?.hasPrefix("C_BAD_STREAMID") == true)
    }

    @Test func steppingDoesNotChangeTheRun() throws {
        let fixture = try FixtureTests.bundled("unbind-vs-stop-marker.fixture")
        for seed: UInt64 in [3, 17] {
            let whole = FixtureRunner(fixture: fixture).run(seed: seed)
            let stepper = try FixtureStepper(fixture: fixture, seed: seed)
            var stops = 0
            while !stepper.isFinished {
                _ = stepper.execute("next")
                stops += 1
            }
            #expect(stops > 10)
            #expect(stepper.run.transcript == whole.transcript, "seed \(seed)")
            #expect(stepper.run.passed)
        }
    }

    @Test func badCommandsAreAnsweredAndChangeNothing() throws {
        let stepper = try Self.stepper(Self.bringUp)
        #expect(stepper.execute("frobnicate") == ["error: unknown command 'frobnicate' (help lists them)"])
        #expect(stepper.execute("break CMD_NOPE") == ["error: no command is named CMD_NOPE"])
        #expect(stepper.execute("break F_NOPE") == ["error: no event type is named F_NOPE"])
        #expect(stepper.execute("continue sid") == ["error: sid takes one StreamID"])
        #expect(stepper.execute("next 0") == ["error: next takes a count from 1 to 1000000"])
        #expect(stepper.execute("queue tlb") == ["error: no queue 'tlb' (cmdq, evtq, priq)"])
        #expect(stepper.execute("cd") == ["error: cd takes a StreamID and an optional SubstreamID"])
        #expect(stepper.execute("delete 3") == ["error: no breakpoint 3"])
        #expect(stepper.execute("where") == ["next: line 4: probe"])
        #expect(stepper.execute("queue evtq") == ["EVTQ: not programmed (EVENTQ_BASE is 0)"])
        #expect(stepper.execute("").isEmpty)
        #expect(!stepper.hasQuit)
        _ = stepper.execute("quit")
        #expect(stepper.hasQuit)
    }

    @Test func noCommandLineTrapsTheStepper() throws {
        // Seeded random command lines from the stepper's vocabulary and junk, over a run of the
        // SVA demo: every line gets an answer (or ends the session) and the run stays usable.
        var state: UInt64 = 0xC0FF_EE11
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let fixture = try FixtureTests.bundled("sva-demo.fixture")
        let stepper = try FixtureStepper(fixture: fixture, seed: 7)
        let words = ["next", "n", "step", "continue", "c", "break", "delete", "breakpoints", "registers", "queues", "queue", "cmdq", "evtq",
                     "priq", "ste", "cd", "pasids", "contexts", "where", "log", "trace", "help", "sid", "CMD_SYNC", "CMD_PRI_RESP",
                     "F_TRANSLATION", "arm_smmu_handle_ppr", "0", "1", "16", "0x10", "0xFFFFFFFFFFFFFFFF", "99999999999999999999",
                     "-1", "\u{0}", "\"", "é", "", " "]
        for _ in 0..<1500 {
            let count = Int(next() % 4)
            let line = (0..<count).map { _ in words[Int(next() % UInt64(words.count))] }.joined(separator: " ")
            let output = stepper.execute(line)
            if line.split(separator: " ").isEmpty { #expect(output.isEmpty) }
        }
        #expect(!stepper.execute("where").isEmpty)
        _ = stepper.execute("continue")
        #expect(stepper.isFinished)
    }

    @Test func viewsTakeTheSMMUOnAPlatformWithSeveral() throws {
        let fixture = try FixtureTests.bundled("global-iopf-queue.fixture")
        let stepper = try FixtureStepper(fixture: fixture, seed: 1)
        _ = stepper.execute("break arm_smmu_handle_ppr")
        let stop = stepper.execute("continue")
        #expect(stop.contains { $0.hasPrefix("stopped: irq/") && $0.hasSuffix("entered arm_smmu_handle_ppr; it is now runnable") }, "\(stop)")
        // Each SMMU has its own stream table and PRI queue, in its own coherent memory.
        let first = stepper.execute("ste 16")
        let second = stepper.execute("ste 16 smmu=1")
        #expect(first.first?.hasPrefix("STE for SID 16 at 0x8000") == true, "\(first)")
        #expect(second.first?.hasPrefix("STE for SID 16 at 0x8100") == true, "\(second)")
        #expect(stepper.execute("queue priq smmu=1").first?.hasPrefix("PRIQ at 0x8100") == true)
        #expect(stepper.execute("registers smmu=2") == ["error: no SMMU 2 (the platform has 2)"])
        #expect(stepper.execute("delete") == ["every breakpoint deleted"])
        #expect(stepper.execute("continue").last?.hasPrefix("the run is finished") == true)
        #expect(stepper.run.passed)
    }
}
