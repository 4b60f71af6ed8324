"""Order per member across a merge: the retired member's deliveries still waiting at an
endpoint go out before the merge's and before anything later about the survivor."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Gateway
from tests.sso import sign_in
from tests.test_sign_in import earn, enrol, my_id
from tests.webhook_receiver import Received, receiver
from tests.webhooks_helpers import deliver, deliveries, endpoint


async def test_a_retired_members_waiting_deliveries_go_first(sso: Gateway):
    async with receiver() as hooks:
        down = {"on": True}
        delivered: list[tuple[str, int]] = []

        def answer(got: Received) -> int:
            if down["on"]:
                return 503
            delivered.append((got.payload["type"], got.payload["data"]["points"]))
            return 204

        hooks.answer["/brew"] = answer
        await endpoint(sso, hooks.url("/brew"), ["points.earned", "member.merged"], "brewbar")
        survivor = await enrol(sso, "skyway", "SKY-1001")
        retired = await enrol(sso, "brewbar", "BB-2002")
        await earn(sso, "brewbar", retired, 11, "b-1")
        await earn(sso, "brewbar", retired, 12, "b-2")
        await earn(sso, "brewbar", survivor, 21, "a-1")
        await deliver(sso)  # b-1 and a-1 fail; b-2 waits behind b-1
        await sign_in(sso, "skyway", "alice")
        assert await my_id(sso) == survivor
        linked = await sign_in(sso, "brewbar", "alice", path="link")  # BB-2002 is merged
        assert linked.response.status_code == 303, linked.response.text
        await earn(sso, "brewbar", survivor, 22, "a-2")
        await deliver(sso)
        assert delivered == []

        down["on"] = False
        for _ in range(8):  # past every pause, a sweep at a time
            sso.clock.now += timedelta(minutes=10)
            await deliver(sso)

        made = (await deliveries(sso, "brewbar"))[hooks.url("/brew")]
        assert [d["status"] for d in made] == ["DELIVERED"] * 5
        assert delivered == [  # event order, the retired member's first
            ("points.earned", 11),
            ("points.earned", 12),
            ("points.earned", 21),
            ("member.merged", 23),  # the stars it moved: 11 + 12
            ("points.earned", 22),
        ]
