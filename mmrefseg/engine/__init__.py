# Copyright (c) mmrefseg contributors.
