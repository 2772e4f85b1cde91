"""The node's services: ~/ask, ~/query, ~/describe, ~/reset, ~/save_memory and ~/load_memory.

A mixin of ``ros.node.SpatialTTTNode``: the questions answer from the latest read-out
snapshot without a lock; reset, save and load take the pipeline lock. Every handler is
wrapped by the node's last-resort guard when the service is created."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from std_srvs.srv import Trigger

from spatial_ttt_ros.pipeline import ReadOut
from spatial_ttt_ros.msg import Answer as AnswerMsg
from spatial_ttt_ros.msg import SceneDescription
from spatial_ttt_ros.answer import QuestionError
from spatial_ttt_ros.ros import conversions as conv
from spatial_ttt_ros.ros.memory_files import (
    MemoryPathError,
    check_loaded_counters,
    check_memory_files,
    resolve_memory_path,
    save_atomically,
)
from spatial_ttt_ros.ros.input_limits import MAX_QUESTION_CHARS
from spatial_ttt_ros.ros.stats import safe_text
from spatial_ttt_ros.srv import Ask, Describe, LoadMemory, Query, SaveMemory


class ServiceHandlers:
    """Service callbacks of ``SpatialTTTNode`` (they use its state: pipeline, read-out, lock, stats)."""

    def _refused_unless(self, response, states: tuple[str, ...] = ("active",), field: str = "error") -> bool:
        """Services follow the lifecycle: answer only in ``states``, else success false and why."""
        state = self._state_label()
        if state in states and self.pipeline is not None:
            return False
        self.stats.problem("not_active", f"service called while {state}")
        response.success = False
        setattr(response, field, f"the node is {state}, not {' or '.join(states)}: "
                "ros2 lifecycle set <node> configure / activate")
        return True

    def _answer(self, question: str, compute) -> tuple[bool, str, AnswerMsg]:
        """``compute(inventory) -> Answer`` on the latest snapshot: no lock, no decode, so a
        question never waits for the worker and the worker never waits for a question. The
        answer's header stamp is the newest frame the snapshot holds (its staleness)."""
        t0 = time.perf_counter()
        try:
            read_out, params = self._read_out, self.params
            if read_out is None or params is None:
                raise RuntimeError("the node is not configured")
            inventory = read_out.inventory
            answer = compute(inventory)
        except QuestionError as exc:
            reason = safe_text(exc, 400)
            self._problem("question_error", reason)
            return False, reason, AnswerMsg()
        except Exception as exc:
            self._problem("answer_error", f"{type(exc).__name__}: {exc}")
            return False, f"internal error: {safe_text(f'{type(exc).__name__}: {exc}', 400)}", AnswerMsg()
        finally:
            self.stats.latency["answer"].add(time.perf_counter() - t0)
        msg = conv.answer_to_msg(answer, question, inventory.stamp, params.world_frame)
        self._answers_given += 1
        pub = self._pubs.get("answers")
        if pub is not None:
            pub.publish(msg)  # a lifecycle publisher: silent unless active
        return True, "", msg

    def _refuse(self, response, problem: str, logged: str, error: str | None = None):
        """Count and log ``problem``, fill the response's error (``error``, or what was logged) -> response."""
        self._problem(problem, logged)
        response.success, response.error = False, logged if error is None else error
        return response

    def _too_long(self, kind: str, texts: list[str], response) -> bool:
        n = sum(len(t) for t in texts)
        if n <= MAX_QUESTION_CHARS:
            return False
        self._refuse(response, "question_too_long", f"{kind} of {n} characters refused (at most {MAX_QUESTION_CHARS})",
                     f"{kind} too long: {n} characters, at most {MAX_QUESTION_CHARS}")
        return True

    def _on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        if self._refused_unless(response) or self._too_long("question", [request.question, *request.options], response):
            return response
        question = request.question.strip()
        if not question:
            return self._refuse(response, "question_error", "empty question",
                                "empty question: ask e.g. 'How many chairs are in the room?'")
        options = [o for o in request.options if o.strip()] or None
        qa = self._qa
        if qa is not None and qa.route(question, options) == "vlm":  # qa_backend vlm, or hybrid on a free-form question
            response.success, response.error, response.answer = self._answer(question, lambda _: qa.vlm(question, options))
            return response
        from spatial_ttt_ros.reasoning.parser import parse_question
        from spatial_ttt_ros.reasoning.solvers import solve

        try:  # parsed before and outside any lock (bounded length: cheap)
            parsed = parse_question(question, options)
        except QuestionError as exc:
            return self._refuse(response, "question_error", safe_text(exc, 400))
        response.success, response.error, response.answer = self._answer(
            question, lambda inventory: solve(parsed, inventory, options)
        )
        return response

    def _on_query(self, request: Query.Request, response: Query.Response) -> Query.Response:
        if self._refused_unless(response) or self._too_long(
            "query", [request.task_type, *request.object_names, *request.options], response
        ):
            return response
        task = request.task_type.strip()
        if not task:
            return self._refuse(response, "question_error", "empty task_type",
                                "empty task_type: one of the task types in Answer.msg")
        objects = [o for o in request.object_names if o.strip()]
        options = [o for o in request.options if o.strip()] or None
        from spatial_ttt_ros.reasoning.qa import answer_structured

        response.success, response.error, response.answer = self._answer(
            "", lambda inventory: answer_structured(task, objects, options, inventory)
        )
        return response

    def _describe_msg(self, read_out: ReadOut) -> SceneDescription:
        """The snapshot as a message (no lock: the snapshot never changes)."""
        return conv.inventory_to_description(
            read_out.inventory, read_out.description, read_out.frames, read_out.stamp, self.params.world_frame
        )

    def _on_describe(self, request, response: Describe.Response) -> Describe.Response:
        if self._refused_unless(response, ("active", "inactive")):
            return response
        try:
            read_out = self._read_out
            if read_out is None:
                raise RuntimeError("the node is not configured")
            response.description = self._describe_msg(read_out)
            response.success = True
        except Exception as exc:
            self._problem("describe_error", f"{type(exc).__name__}: {exc}")
            response.success, response.error = False, safe_text(f"{type(exc).__name__}: {exc}", 400)
        return response

    def _forget_stream(self) -> int:
        """Reset the memory now, and make queued frames and half-synced inputs stale."""
        with self._pipeline_lock:
            frames = self.pipeline.frames_processed
            self.pipeline.reset()
            if self._worker is not None:
                self._worker.new_generation()
                self._worker.mark_generation_applied()
            self._publish_read_out()  # the empty memory (cheap)
        if self._qa is not None:
            self._qa.reset()
        with self._sync_lock:
            if self._sync is not None:  # frames waiting for partners belong to the old stream
                self.ledger.drop("sync", "reset", self._sync.clear())
            if self._timeline is not None:
                self._timeline.reset()
        return frames

    def _on_reset(self, request, response: Trigger.Response) -> Trigger.Response:
        if self._refused_unless(response, field="message"):
            return response
        frames = self._forget_stream()
        response.success, response.message = True, f"memory reset ({frames} frames forgotten)"
        self.get_logger().info(response.message)
        return response

    def _on_save(self, request: SaveMemory.Request, response: SaveMemory.Response) -> SaveMemory.Response:
        # Saving reads the memory: also while inactive (deactivate, save, shut down).
        if self._refused_unless(response, ("active", "inactive"), field="message"):
            return response
        root = self.params.memory_root
        try:
            path = resolve_memory_path(root, request.path, must_exist=False)
            with self._pipeline_lock:
                # Written into a fresh private directory inside memory_dir, then renamed into
                # place: a symlink named like a companion file is replaced, never written through.
                save_atomically(root, path, self.pipeline.save)
                response.state_bytes = int(self.pipeline.state_bytes())
        except Exception as exc:
            message = safe_text(exc, 300)
            self._problem("save_failed", f"'{safe_text(request.path, 80)}': {message}")
            response.success, response.message = False, f"not saved: {message}"
            return response
        response.success, response.message = True, str(path)
        self.get_logger().info(f"memory saved to {path} ({response.state_bytes} bytes of state)")
        return response

    def _on_load(self, request: LoadMemory.Request, response: LoadMemory.Response) -> LoadMemory.Response:
        if self._refused_unless(response, field="message"):
            return response
        root = self.params.memory_root
        try:
            path = resolve_memory_path(root, request.path, must_exist=True)
        except MemoryPathError as exc:
            message = safe_text(exc, 300)
            self._problem("load_refused", message)
            response.success, response.message = False, message
            return response
        with self._pipeline_lock, tempfile.TemporaryDirectory(prefix="spatial_ttt_rollback_") as tmp:
            # A refused file must not cost the robot its current memory: keep a copy to restore.
            # The copy is also the reference the file is checked against (same memory, same model).
            rollback = Path(tmp) / "state"
            try:
                self.pipeline.save(rollback)
            except Exception:
                rollback = None  # nothing to keep (empty memory)
            try:
                check_memory_files(path, rollback)
                self.pipeline.load(path)
                check_loaded_counters(self.pipeline)
            except Exception as exc:
                try:
                    if rollback is not None:
                        self.pipeline.load(rollback)
                    else:
                        self.pipeline.reset()
                except Exception as restore_exc:  # should not happen: our own fresh save
                    self.pipeline.reset()
                    self.get_logger().error(f"could not restore the memory after a failed load: {safe_text(restore_exc)}")
                self._publish_read_out()
                detail = safe_text(exc, 300)
                message = f"refused {safe_text(path.name, 80)}: {detail}" if isinstance(exc, (ValueError, FileNotFoundError)) else (
                    f"refused {safe_text(path.name, 80)}: not a readable memory state ({type(exc).__name__}: {detail})"
                )
                self._problem("load_refused", message)
                response.success, response.message = False, message + " (memory unchanged)"
                return response
            frames = self.pipeline.frames_processed
            if self._worker is not None:  # frames queued for the old stream are stale now
                self._worker.new_generation()
                self._worker.mark_generation_applied()
            self._publish_read_out()  # a load is rare: the service decodes the loaded memory itself
        with self._sync_lock:
            if self._timeline is not None:
                self._timeline.reset()
        response.success, response.message = True, f"loaded {path} ({frames} frames)"
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ periodic outputs
