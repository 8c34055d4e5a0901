"""pytest --nbmake notebooks: nbmake runs nbclient inside this pytest process, so the bounded kernel waits of
kernel_wait.py (a guard against the idle-kernel hang) are installed here for every notebook."""
import kernel_wait

kernel_wait.install()
