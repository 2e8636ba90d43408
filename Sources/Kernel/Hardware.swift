/// A piece of hardware as a context of the scheduler: `step` does one unit of its work (one
/// command consumed, one inbound transaction, one queue entry) and returns whether it did
/// anything. The agent runs steps, with a scheduling point between any two, while there is
/// work, and sleeps until kicked otherwise; every `writel`/`writeq` kicks every agent, so that
/// a doorbell write lets the hardware act at a point the scheduler chooses, not inside the
/// write.
public final class HardwareAgent: @unchecked Sendable {
    /// The agent's name (its context is `hw/<name>`).
    public let name: String
    private let wake: WaitQueue
    @exclusivity(unchecked) private var kicked = false
    @exclusivity(unchecked) private var stopped = false
    /// Steps that did work.
    @exclusivity(unchecked) public private(set) var steps = 0

    /// Starts the agent on `scheduler`.
    public init(_ name: String, on scheduler: KernelScheduler, step: @escaping () -> Bool) {
        self.name = name
        wake = WaitQueue("hw/\(name): idle")
        scheduler.register(self)
        scheduler.spawn("hw/\(name)", daemon: true) { [self] in
            while !stopped {
                kicked = false
                while !stopped, step() {
                    steps += 1
                    await KernelScheduler.schedule()
                }
                await wake.waitEvent { kicked || stopped }
            }
        }
    }

    /// Stops the agent: its context finishes the next time the scheduler runs.
    public func stop() {
        stopped = true
        wake.wakeUp()
    }

    /// Tells the agent there may be work.
    public func kick() {
        kicked = true
        wake.wakeUp()
    }
}

extension KernelScheduler {
    /// Kicks every hardware agent (after a register write).
    public func kickHardware() {
        for agent in hardwareAgents { agent.kick() }
    }
}
