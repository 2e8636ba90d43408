import Testing
import Platform
import Kernel
import SMMUv3
import ArmSMMUv3

/// The command queue as the driver drives it (CMD_SYNC by MSI and by polling, timeouts,
/// CERROR_ILL recovery) and the event and PRI queue threads (draining, overflow).
@Suite struct QueueThreadTests {
    @Test func aCMD_SYNCCompletesByAnMSIWritingItsSequenceNumberToSyncCount() async throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let syncCount = try #require(smmu.sync_count)
        #expect(smmu.features & ARM_SMMU_FEAT_MSI != 0 && smmu.features & ARM_SMMU_FEAT_COHERENCY != 0)
        #expect(UInt32(truncatingIfNeeded: syncCount[0]) == 2, "two CMD_SYNCs during reset")
        let syncMSIs = rig.bus.interrupts.deliveredMSIs.filter { $0.address == syncCount.address }.map(\.data)
        #expect(syncMSIs == [1, 2])
        rig.run {
            await arm_smmu_cmdq_issue_cmd(smmu, arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NSNH_ALL))
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(UInt32(truncatingIfNeeded: syncCount[0]) == 3)
        #expect(rig.messages(atMost: .error).isEmpty)
    }

    @Test func withoutCoherencyCMD_SYNCIsPolledOnCONSWithWFEWokenBySEV() throws {
        var configuration = SMMUConfiguration.default
        configuration.coherentAccess = false
        let rig = try DriverRig(configuration: configuration)
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        #expect(smmu.features & ARM_SMMU_FEAT_COHERENCY == 0)
        #expect(smmu.sync_count?[0] == 0, "no MSI completion")
        #expect(rig.bus.interrupts.sendEventCount == 2, "each CMD_SYNC (CS = SEV) sent an event")
        #expect(rig.model.peek(.cmdqCons) == rig.model.peek(.cmdqProd))
        #expect(!rig.messages().contains("CMD_SYNC timeout"))
    }

    @Test(arguments: [true, false])
    func aCMD_SYNCThatIsNeverConsumedTimesOutAfterOneSecondWithLinuxsMessage(coherent: Bool) throws {
        var configuration = SMMUConfiguration.default
        configuration.coherentAccess = coherent
        let rig = try DriverRig(configuration: configuration)
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let start = rig.bus.clock.now
        rig.run {
            // The command queue stops: nothing will be consumed.
            _ = await arm_smmu_write_reg_sync(smmu, UInt32(CR0_SMMUEN | CR0_EVTQEN | CR0_PRIQEN), ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(rig.messages(atMost: .error) == ["CMD_SYNC timeout"])
        let waited = rig.bus.clock.now - start
        #expect(waited >= 1_000_000_000 && waited < 1_001_000_000, "ARM_SMMU_CMDQ_SYNC_TIMEOUT_US of virtual time")
    }

    @Test func anIllegalCommandIsReplacedByACMD_SYNCAndTheQueueResumes() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        rig.run {
            await smmu.cmdq.lock.lock()
            _ = await queue_insert_raw(smmu.cmdq.q, [0xFF, 0])  // no such opcode
            smmu.cmdq.lock.unlock()
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(rig.messages(atMost: .warning) == [
            "unexpected global error reported (0x00000001), this could be serious",
            "CMDQ error (cons 0x01000005): Illegal command",
            "skipping command in error state:",
            "\t0x00000000000000ff",
            "\t0x0000000000000000",
        ])
        #expect(rig.model.peek(.gerror) == rig.model.peek(.gerrorn), "acknowledged")
        #expect(rig.model.peek(.cmdqCons) & ~CMDQ_CONS_ERR == rig.model.peek(.cmdqProd), "the queue drained past the bad command")
        #expect(FIELD_GET(CMDQ_CONS_ERR, rig.model.peek(.cmdqCons)) == CMDQ_ERR_CERROR_ILL_IDX, "ERR keeps the last error")
        #expect(UInt32(truncatingIfNeeded: smmu.sync_count?[0] ?? 0) == 3, "the driver's CMD_SYNC completed")
    }

    static func badStreamTransaction() -> InboundTransaction {
        InboundTransaction(streamID: 0x1_0000, address: 0x1000, access: AccessAttributes(read: true))
    }

    @Test func eventsAreLoggedWithLinuxsText() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        rig.run("device") { [model = rig.model] in _ = model.translate(Self.badStreamTransaction()) }
        let lines = rig.messages(atMost: .info).filter { !$0.hasPrefix("allocated") && !$0.hasPrefix("ias") }
        #expect(lines.count == 5)
        #expect(lines.first == "event 0x02 received:", "C_BAD_STREAMID")
        #expect(lines.dropFirst().first == "\t0x0001000000000002", "StreamID in bits 63:32 of the first word")
    }

    @Test func anEventQueueOverflowIsReportedOnceAndAcknowledgedByTheNextConsumption() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let entries = 1 << Int(smmu.evtq.q.max_n_shift)
        rig.run("device") { [model = rig.model] in
            for _ in 0..<(entries + 10) { _ = model.translate(Self.badStreamTransaction()) }
        }
        let overflowFlag = UInt64(Q_OVERFLOW_FLAG)
        #expect(rig.messages(atMost: .error) == ["EVTQ overflow detected -- events lost"])
        #expect(rig.messages().filter { $0.hasPrefix("event ") }.count == entries)
        #expect(rig.model.peek(.eventqProd) & overflowFlag != 0)
        #expect(rig.model.peek(.eventqCons) & overflowFlag == 0, "Linux does not write CONS after the overflow")
        rig.run("device") { [model = rig.model] in _ = model.translate(Self.badStreamTransaction()) }
        #expect(rig.model.peek(.eventqCons) & overflowFlag != 0, "acknowledged with the next entry consumed")
        #expect(rig.messages(atMost: .error).count == 1)
    }

    @Test func aPRIQueueOverflowIsReportedAndAcknowledgedAtOnce() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let entries = 1 << Int(smmu.priq.q.max_n_shift)
        rig.run("device") { [model = rig.model] in
            for index in 0..<(entries + 4) {
                _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index % 512), last: false, read: true, write: false, address: UInt64(index) << 12))
            }
        }
        let overflowFlag = UInt64(Q_OVERFLOW_FLAG)
        #expect(rig.messages(atMost: .error) == ["PRIQ overflow detected -- requests lost"])
        #expect(rig.messages().filter { $0 == "unexpected PRI request received:" }.count == entries)
        #expect(rig.model.peek(.priqProd) & overflowFlag != 0)
        #expect(rig.model.peek(.priqCons) & overflowFlag != 0, "OVACKFLG written by the thread")
    }

    @Test func aLastPageRequestIsDeniedWithCMD_PRI_RESP() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        var responses: [PRGResponse] = []
        rig.model.onPRGResponse { responses.append($0) }
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 0x2a, prgIndex: 7, last: true, read: true, write: true, address: 0x4_2000))
        }
        #expect(rig.messages().suffix(2) == [
            "unexpected PRI request received:",
            "\tsid 0x00000010.0x0002a: [7L] unprivileged RW access at iova 0x0000000000042000",
        ])
        // Linux's PRI_RESP_DENY is Resp 0b00, which the spec calls ResponseFailure (§4.5.2).
        #expect(responses == [PRGResponse(streamID: 0x10, substreamID: 0x2a, prgIndex: 7, code: .responseFailure, automatic: false)])
    }
}

/// The command queue filling up, and the combined interrupt.
@Suite struct CommandQueueFullAndCombinedIRQTests {
    @Test func issuingMoreCommandsThanTheQueueHoldsWaitsForSpaceAndLosesNothing() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let entries = 1 << Int(smmu.cmdq.q.max_n_shift)
        let consumedBefore = rig.model.statistics.commandsConsumed
        let count = 3 * entries + 7
        rig.run {
            for index in 0..<count {
                var cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_ASID)
                cmd.tlbi.asid = UInt16(index)
                await arm_smmu_cmdq_issue_cmd(smmu, cmd)
            }
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(rig.model.statistics.commandsConsumed - consumedBefore == count + 1)
        #expect(rig.model.peek(.cmdqCons) == rig.model.peek(.cmdqProd))
        #expect(rig.messages(atMost: .error).isEmpty, "no CMDQ timeout")
    }

    @Test func aCombinedInterruptRunsTheGlobalErrorHandlerAndBothQueueThreads() throws {
        let rig = try DriverRig(msi: false, combinedIRQ: true)
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        #expect(smmu.combined_irq != 0 && smmu.evtq.q.irq == 0 && smmu.gerr_irq == 0)
        rig.run("device") { [model = rig.model] in
            _ = model.translate(InboundTransaction(streamID: 0x1_0000, address: 0, access: AccessAttributes(read: true)))
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, prgIndex: 1, last: false, read: true, write: false, address: 0x1000))
        }
        #expect(rig.messages().contains("event 0x02 received:"))
        #expect(rig.messages().contains("unexpected PRI request received:"))
        rig.run {
            await smmu.cmdq.lock.lock()
            _ = await queue_insert_raw(smmu.cmdq.q, [0xFF, 0])
            smmu.cmdq.lock.unlock()
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(rig.messages(atMost: .error).contains("CMDQ error (cons 0x01000005): Illegal command"))
        #expect(rig.model.peek(.gerror) == rig.model.peek(.gerrorn))
    }
}

/// arm_smmu_cmdq_skip_err's other cases: a command fetch abort is retried as it stands, and
/// an ATC invalidation timeout leaves the CMD_SYNC to be retried.
@Suite struct CommandErrorRecoveryTests {
    @Test func aCommandFetchAbortIsReportedAndTheFetchRetried() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let slot = Q_ENT(smmu.cmdq.q, smmu.cmdq.q.prod)
        rig.bus.faults.injectAbort(slot...(slot + 15), on: .read, count: 1)
        let consumedBefore = rig.model.statistics.commandsConsumed
        rig.run {
            await arm_smmu_cmdq_issue_cmd(smmu, arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NSNH_ALL))
            await arm_smmu_cmdq_issue_sync(smmu)
        }
        #expect(rig.messages(atMost: .error) == ["CMDQ error (cons 0x02000005): Abort on command fetch", "retrying command fetch"])
        #expect(rig.model.statistics.commandsConsumed - consumedBefore == 2, "the TLBI, fetched again, and the CMD_SYNC")
        #expect(UInt32(truncatingIfNeeded: smmu.sync_count?[0] ?? 0) == 3)
    }
}
