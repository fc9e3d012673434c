// The Langfuse JS SDK against a Langfuse (autoops serve in the tests): trace with every
// observation type through @langfuse/tracing + @langfuse/otel, score with @langfuse/client
// (it sends scores through POST /api/public/ingestion), then read everything back through the
// client's own API and print one JSON document: what was sent and what came back.
//
// Environment: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_BASE_URL. Warnings and
// errors the SDK logs go to stderr; the test fails on "Failed to export" there.
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { LangfuseSpanProcessor } from "@langfuse/otel";
import { propagateAttributes, startActiveObservation, startObservation } from "@langfuse/tracing";
import { LangfuseClient } from "@langfuse/client";

const processor = new LangfuseSpanProcessor({ flushAt: 1000, environment: "js-test", release: "js-1" });
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
provider.register();
const langfuse = new LangfuseClient();

const sessionId = `js-session-${process.pid}-${Date.now()}`;
const sent = { sessionId, observations: {}, scores: [] };

await propagateAttributes(
  { userId: "js-user", sessionId, tags: ["js", "round-trip"], metadata: { suite: "official-clients" } },
  () =>
    startActiveObservation(
      "js-workflow",
      async (root) => {
        root.update({ input: { event: "js-1" } });
        sent.traceId = root.traceId;
        sent.observations.chain = root.id;
        const agent = startObservation("js-agent", { input: { price: 10 }, metadata: { agent_id: "js" } }, { asType: "agent" });
        sent.observations.agent = agent.id;
        for (const type of ["tool", "retriever", "evaluator", "guardrail", "embedding", "span"]) {
          const child = agent.startObservation(`js-${type}`, { input: { type } }, { asType: type });
          child.update({ output: { done: type } });
          child.end();
          sent.observations[type] = child.id;
        }
        const generation = agent.startObservation(
          "js-generation",
          {
            model: "gpt-js",
            input: [{ role: "user", content: "hello" }],
            modelParameters: { temperature: 0.5, max_tokens: 100 },
            usageDetails: { input: 12, output: 7, total: 19 },
            costDetails: { input: 0.0012, output: 0.0021, total: 0.0033 },
          },
          { asType: "generation" },
        );
        generation.update({ output: { role: "assistant", content: "hi" } });
        generation.end();
        sent.observations.generation = generation.id;
        const event = agent.startObservation("js-event", { input: { note: "tick" }, level: "WARNING" }, { asType: "event" });
        sent.observations.event = event.id;
        agent.update({ output: { price: 9 }, level: "WARNING", statusMessage: "close to floor" });
        agent.end();
        root.update({ output: { done: true } });
      },
      { asType: "chain" },
    ),
);

const scores = [
  { name: "js-numeric", value: 0.75, dataType: "NUMERIC", comment: "numeric from js" },
  { name: "js-boolean", value: 1, dataType: "BOOLEAN" },
  { name: "js-categorical", value: "good", dataType: "CATEGORICAL" },
];
for (const score of scores) {
  const id = `${score.name}-${process.pid}-${Date.now()}`;
  langfuse.score.create({ id, traceId: sent.traceId, observationId: sent.observations.agent, ...score });
  sent.scores.push({ id, ...score });
}
const traceScoreId = `js-trace-score-${process.pid}-${Date.now()}`;
langfuse.score.create({ id: traceScoreId, traceId: sent.traceId, name: "js-trace", value: 3 });
sent.scores.push({ id: traceScoreId, name: "js-trace", value: 3 });
const sessionScoreId = `js-session-score-${process.pid}-${Date.now()}`;
langfuse.score.create({ id: sessionScoreId, sessionId, name: "js-session", value: 1 });
sent.scores.push({ id: sessionScoreId, name: "js-session", value: 1 });

await processor.forceFlush();
await langfuse.score.flush();

const api = langfuse.api;
const read = {};
read.health = await api.health.health();
read.observations = await api.observations.getMany({
  traceId: sent.traceId,
  fields: "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context",
  limit: 100,
});
read.scores = await api.scoresV3.getManyV3({ traceId: sent.traceId, fields: "core,details,subject" });
read.sessionScores = await api.scoresV3.getManyV3({ sessionId, fields: "core,subject" });
if (process.env.AUTOOPS_JS_LEGACY_READS === "1") {
  read.trace = await api.trace.get(sent.traceId);
  read.session = await api.sessions.get(sessionId);
  read.sessions = await api.sessions.list({ limit: 50 });
}
read.deleted = await api.trace.delete(sent.traceId);
read.afterDelete = await api.observations.getMany({ traceId: sent.traceId, limit: 10 });

await langfuse.shutdown();
await provider.shutdown();
process.stdout.write(JSON.stringify({ sent, read }) + "\n");
